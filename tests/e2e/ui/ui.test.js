// ui.test.js -- the web UI in headless Chromium against a real gateway and
// real workers (tests/e2e/ui.sh prepares the database, workers and tokens and
// passes them in UI_* variables). Every wait is on page state with a deadline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const BASE = env.UI_BASE_URL;
const ARTIFACTS = env.UI_ARTIFACTS;
const RUN = Math.random().toString(36).slice(2, 8); // file names unique to this run

let browser;
let gateway = null;

// ---- the gateway, owned here so that a test can restart it ----------------------------

async function startGateway() {
  const log = fs.openSync(env.UI_GATEWAY_LOG, 'a');
  const genv = { ...process.env };
  delete genv.IMPORTER_METRICS_ADDR;
  Object.assign(genv, {
    DATABASE_URL: env.UI_GATEWAY_DATABASE_URL,
    IMPORTER_LISTEN_DATABASE_URL: env.UI_GATEWAY_DATABASE_URL,
    IMPORTER_HTTP_ADDR: env.UI_HTTP_ADDR,
    IMPORTER_JWT_SECRET: env.UI_JWT_SECRET,
    IMPORTER_SSE_HEARTBEAT_MS: '1000',
    IMPORTER_LOG_LEVEL: 'info',
  });
  const child = spawn(env.UI_GATEWAY_BIN, [], { env: genv, stdio: ['ignore', 'ignore', log] });
  fs.closeSync(log);
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  fs.writeFileSync(env.UI_GATEWAY_PIDFILE, String(child.pid));
  gateway = child;
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const res = await fetch(`${BASE}/readyz`);
      if (res.status === 200) return;
    } catch { /* not listening yet */ }
    if (child.exitCode !== null) throw new Error(`importer-gateway exited at start (${child.exitCode})`);
    if (Date.now() > deadline) throw new Error('importer-gateway not ready after 30 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

// SIGTERM; the gateway must exit 0 within 15 s.
async function stopGateway() {
  const child = gateway;
  gateway = null;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
  const { code, signal } = await child.exited;
  clearTimeout(timer);
  assert.equal(signal, null, `gateway ended by ${signal}`);
  assert.equal(code, 0, 'gateway exit status after SIGTERM');
}

// ---- helpers -------------------------------------------------------------------------------

function sql(query) {
  return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', env.UI_DB_URL, '-c', query], { encoding: 'utf8' }).trim();
}

async function shot(page, name) {
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

// A page signed in through the URL fragment, with the stream live.
async function openPage(token, { viewport = { width: 1280, height: 900 }, expectLive = true } = {}) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console: ${m.text()}`); });
  await page.goto(`${BASE}/#token=${token}`);
  if (expectLive) await page.locator('#conn[data-state="live"]').waitFor({ timeout: 15000 });
  return page;
}

async function closePage(page, { allow = [] } = {}) {
  const problems = page.problems.filter((p) => !allow.some((re) => re.test(p)));
  await page.context().close();
  assert.deepEqual(problems, [], 'the page logged errors');
}

function csv(rows, { bad = () => false } = {}) {
  const lines = ['id,name,email'];
  for (let i = 1; i <= rows; i++) {
    lines.push(bad(i) ? `r${i},only two fields` : `r${i},"Name ${i}",user${i}@example.com`);
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

// Uploads through the form; returns the new job's id (its row appears at once).
async function upload(page, name, buffer, { collection } = {}) {
  await page.setInputFiles('#file-input', { name, mimeType: 'text/csv', buffer });
  assert.equal(await page.locator('#kind').inputValue(), 'csv', 'kind inferred from .csv');
  if (collection) await page.fill('#collection', collection);
  await page.click('#submit');
  const row = page.locator('#jobs li.job', { has: page.locator('.job-name', { hasText: name }) });
  await row.waitFor({ timeout: 5000 });
  return row.getAttribute('data-job-id');
}

const rowOf = (page, id) => page.locator(`#jobs li.job[data-job-id="${id}"]`);

async function waitStatus(page, id, status, timeout = 30000) {
  await page.locator(`#jobs li.job[data-job-id="${id}"][data-status="${status}"]`).waitFor({ timeout });
}

// Waits until the job is processing with the bar above min percent; returns it.
async function waitProgress(page, id, min = 0, timeout = 30000) {
  const handle = await page.waitForFunction(([jobId, floor]) => {
    const row = document.querySelector(`#jobs li.job[data-job-id="${jobId}"]`);
    if (!row || row.dataset.status !== 'processing') return false;
    const v = Number(row.querySelector('[role=progressbar]').getAttribute('aria-valuenow'));
    return v > floor ? v : false;
  }, [id, min], { timeout, polling: 50 });
  return handle.jsonValue();
}

// PUT /api/uploads/{id}/chunks/{seq} answered 200 so far (the gateway's /metrics).
async function chunkRequests() {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  const m = /importer_http_requests_total\{route="upload_chunk",status="200"\} (\d+)/.exec(text);
  return m ? Number(m[1]) : 0;
}

async function apiAs(token, method, url, body) {
  const res = await fetch(`${BASE}${url}`, { method, body, headers: { Authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

// ---- lifecycle -------------------------------------------------------------------------------

before(async () => {
  await startGateway();
  browser = await chromium.launch({
    executablePath: env.UI_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (gateway) await stopGateway();
});

// ---- scenarios ---------------------------------------------------------------------------------

test('the page is served by the gateway with its security headers', async () => {
  const res = await fetch(`${BASE}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.match(res.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
  const js = await fetch(`${BASE}/app.js`, { headers: { 'If-None-Match': (await fetch(`${BASE}/app.js`)).headers.get('etag') } });
  assert.equal(js.status, 304);
  assert.equal((await fetch(`${BASE}/api/nope`)).status, 404, 'the API keeps its routes');
  assert.equal((await fetch(`${BASE}/healthz`)).status, 200);
});

let jobOfA = null;

test('a CSV uploaded through the page completes with exact counts', async () => {
  const page = await openPage(env.UI_TOKEN_A);
  assert.ok(!page.url().includes('token='), 'the token left the address bar');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('importer.token')), env.UI_TOKEN_A);
  const name = `people-${RUN}.csv`;
  const rows = 1500;
  const id = await upload(page, name, csv(rows), { collection: `people_${RUN}` });
  jobOfA = id;
  await waitStatus(page, id, 'completed');
  const row = rowOf(page, id);
  const bar = row.locator('[role=progressbar]');
  assert.equal(await bar.getAttribute('aria-valuenow'), '100');
  assert.equal(await bar.getAttribute('aria-valuemin'), '0');
  assert.equal(await bar.getAttribute('aria-valuemax'), '100');
  assert.equal((await row.locator('.badge.status').textContent()).trim(), 'Completed');
  assert.equal((await row.locator('.job-counts').textContent()).trim(), `${rows.toLocaleString('en')} of ${rows.toLocaleString('en')} records`);
  await page.locator('.toast', { hasText: `${name} completed` }).waitFor({ timeout: 5000 });
  assert.equal(sql(`SELECT count(*) FROM importer.records WHERE collection = 'people_${RUN}'`), String(rows));

  // The detail: counts, timings and the job's log lines (live, coloured by level).
  await row.locator('.job-name').click();
  await page.locator('#detail:not([hidden])').waitFor();
  await page.locator('#detail-status-badge[data-status="completed"]').waitFor();
  assert.equal(await page.locator('#detail-progress [role=progressbar]').getAttribute('aria-valuenow'), '100');
  assert.equal((await page.locator('[data-fact="inserted"]').textContent()).trim(), rows.toLocaleString('en'));
  assert.equal((await page.locator('[data-fact="failed"]').textContent()).trim(), '0');
  assert.equal(await page.locator('[data-fact="unchanged"]').count(), 0, 'no Unchanged when there are none');
  assert.match(await page.locator('[data-fact="took"]').textContent(), /second|minute/);
  await page.locator('#logs li.log').first().waitFor({ timeout: 10000 });
  assert.ok(await page.locator('#logs li.log-info').count() >= 1, 'info lines in the log');
  await page.locator('#errors-none').waitFor();
  // Completed: only Delete is offered.
  assert.deepEqual(await page.locator('#detail-actions button').evaluateAll((b) => b.map((x) => x.dataset.action)), ['delete']);
  const file = await shot(page, 'job-completed');
  console.log(`screenshot: ${file}`);
  await closePage(page);
});

test('the same file again leaves its records as they are, and the page says so', async () => {
  assert.ok(jobOfA, 'needs the first upload');
  const page = await openPage(env.UI_TOKEN_A);
  const rows = 1500;
  const id = await upload(page, `people-again-${RUN}.csv`, csv(rows), { collection: `people_${RUN}` });
  await waitStatus(page, id, 'completed');
  await rowOf(page, id).locator('.job-name').click();
  await page.locator('#detail-status-badge[data-status="completed"]').waitFor();
  assert.equal((await page.locator('[data-fact="inserted"]').textContent()).trim(), '0');
  assert.equal((await page.locator('[data-fact="updated"]').textContent()).trim(), '0');
  assert.equal((await page.locator('[data-fact="unchanged"]').textContent()).trim(), rows.toLocaleString('en'));
  assert.equal(sql(`SELECT count(*) FROM importer.records WHERE collection = 'people_${RUN}' AND job_id = '${jobOfA}'`),
    String(rows), 'the records still name the job that wrote them');
  await closePage(page);
});

test('a file with bad rows shows its record errors, paged, and the CSV download holds them', async () => {
  const page = await openPage(env.UI_TOKEN_A);
  const name = `bad-rows-${RUN}.csv`;
  const bad = (i) => i % 2 === 0; // 60 of 120 rows lack a field
  const id = await upload(page, name, csv(120, { bad }));
  await waitStatus(page, id, 'completed');
  assert.match(await rowOf(page, id).locator('.job-counts').textContent(), /120 of 120 records · 60 failed/);
  await page.locator('.toast-warn', { hasText: name }).waitFor({ timeout: 5000 });
  await rowOf(page, id).locator('.job-name').click();
  const table = page.locator('#errors table');
  await table.waitFor({ timeout: 10000 });
  assert.match(await table.locator('caption').textContent(), /1–50 of 60/);
  assert.equal(await table.locator('tbody tr').count(), 50);
  const first = await table.locator('tbody tr').first().locator('td').allTextContents();
  assert.equal(first[0], '2', 'record_index of the first bad row');
  assert.ok(first[3].length > 0, 'a message says what is wrong');
  // Page 2 holds the other 10.
  await page.getByRole('button', { name: 'Next' }).click();
  await page.locator('#errors caption', { hasText: '51–60 of 60' }).waitFor();
  assert.equal(await page.locator('#errors tbody tr').count(), 10);
  assert.ok(await page.getByRole('button', { name: 'Next' }).isDisabled());
  await shot(page, 'record-errors');
  await page.getByRole('button', { name: 'Previous' }).click();
  await page.locator('#errors caption', { hasText: '1–50 of 60' }).waitFor();

  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 10000 }),
    page.getByRole('button', { name: 'Download errors as CSV' }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^bad-rows-.*-errors-[0-9a-f]{8}\.csv$/);
  const text = fs.readFileSync(await download.path(), 'utf8');
  const lines = text.trimEnd().split('\r\n');
  assert.equal(lines[0], 'record_index,record_key,collection,message');
  assert.equal(lines.length, 61, 'a header and the 60 errors');
  const indexes = lines.slice(1).map((l) => Number(l.split(',')[0]));
  assert.deepEqual(indexes, Array.from({ length: 60 }, (_, i) => 2 * (i + 1)));
  assert.ok(lines.slice(1).every((l) => l.includes(`,bad-rows-${RUN},`) && !l.endsWith(',')), lines[1]);

  // Delete, confirmed: the row goes, the detail closes.
  await page.locator('#detail-actions').getByRole('button', { name: `Delete ${name}` }).click();
  await page.getByRole('button', { name: 'Delete job' }).click();
  await page.waitForFunction((jobId) => !document.querySelector(`#jobs li.job[data-job-id="${jobId}"]`)
    && document.getElementById('detail').hidden, id, { timeout: 10000 });
  assert.equal((await apiAs(env.UI_TOKEN_A, 'GET', `/api/jobs/${id}`)).status, 404);
  await closePage(page);
});

test('a file that cannot be imported fails with its reason; Retry runs it again', async () => {
  const page = await openPage(env.UI_TOKEN_A);
  const name = `broken-${RUN}.json`;
  await page.setInputFiles('#file-input', { name, mimeType: 'application/json', buffer: Buffer.from('this is not JSON\n') });
  assert.equal(await page.locator('#kind').inputValue(), 'backup', 'kind inferred from .json');
  await page.click('#submit');
  const row = page.locator('#jobs li.job', { has: page.locator('.job-name', { hasText: name }) });
  await row.waitFor({ timeout: 5000 });
  const id = await row.getAttribute('data-job-id');
  await waitStatus(page, id, 'failed');
  await page.locator('.toast-error', { hasText: `${name} failed` }).waitFor({ timeout: 5000 });
  await row.locator('.job-name').click();
  await page.locator('#detail-status-badge[data-status="failed"]').waitFor();
  assert.match(await page.locator('#detail-error').textContent(), /^Error: .+/);
  assert.deepEqual(await page.locator('#detail-actions button').evaluateAll((b) => b.map((x) => x.dataset.action)), ['retry', 'restart', 'delete']);
  await page.locator('#logs li.log-error').first().waitFor({ timeout: 10000 });
  await page.locator('#detail-actions').getByRole('button', { name: `Retry ${name}` }).click();
  // It runs again and fails again: a second error line in the live log.
  await page.waitForFunction(() => document.querySelectorAll('#logs li.log-error').length >= 2, null, { timeout: 30000 });
  await waitStatus(page, id, 'failed');
  assert.equal(await page.locator('.toast-error', { hasText: 'Retry failed' }).count(), 0);
  await closePage(page);
});

test('by keyboard only: a file over 8 MiB goes up in chunks, as a dry run', async () => {
  const page = await openPage(env.UI_TOKEN_A);
  const rows = 9000;
  const pad = 'x'.repeat(1024);
  const lines = ['id,note'];
  for (let i = 1; i <= rows; i++) lines.push(`d${i},${pad}`);
  const buffer = Buffer.from(`${lines.join('\n')}\n`);
  assert.ok(buffer.length > 8 * 1024 * 1024, 'larger than one request of the page');
  const name = `dry-${RUN}.csv`;
  const file = path.join(env.UI_TMP, name); // a path, not a buffer: the browser reads it itself
  fs.writeFileSync(file, buffer);
  const chunksBefore = await chunkRequests();
  // The drop zone's file input takes the keyboard focus; Space opens the picker.
  // Headless Chromium now and then drops the picker of a key press on a busy
  // machine: a user would press again, and so does the test (at most 3 times).
  let chooser = null;
  for (let attempt = 1; attempt <= 3 && !chooser; attempt++) {
    await page.focus('#file-input');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'file-input');
    chooser = await Promise.all([page.waitForEvent('filechooser', { timeout: 10000 }), page.keyboard.press('Space')])
      .then(([c]) => c, () => null);
  }
  assert.ok(chooser, 'Space on the focused file input opens the file picker');
  await chooser.setFiles(file);
  await page.locator('#file-chosen', { hasText: name }).waitFor();
  await page.focus('#collection');
  await page.keyboard.type(`dry_${RUN}`);
  await page.focus('#dry-run');
  await page.keyboard.press('Space');
  assert.ok(await page.locator('#dry-run').isChecked());
  await page.focus('#key');
  await page.keyboard.type('id');
  await page.keyboard.press('Enter'); // submits the form
  const row = page.locator('#jobs li.job', { has: page.locator('.job-name', { hasText: name }) });
  await row.waitFor({ timeout: 30000 });
  const id = await row.getAttribute('data-job-id');
  await waitStatus(page, id, 'completed', 60000);
  assert.equal((await row.locator('.job-counts').textContent()).trim(), `${rows.toLocaleString('en')} of ${rows.toLocaleString('en')} records`);
  await row.locator('.job-name').focus();
  await page.keyboard.press('Enter');
  await page.locator('#detail-status-badge[data-status="completed"]').waitFor();
  assert.match(await page.locator('[data-fact="mode"]').textContent(), /^upsert \(dry run/);
  assert.equal(await page.locator('[data-fact="size"]').textContent(), `${(buffer.length / 1048576).toFixed(1)} MiB`);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'detail-title', 'focus moves to the job');
  assert.equal(sql(`SELECT count(*) FROM importer.records WHERE collection = 'dry_${RUN}'`), '0', 'a dry run writes nothing');
  assert.equal(await chunkRequests() - chunksBefore, Math.ceil(buffer.length / (1024 * 1024)), '1 MiB chunks');
  await closePage(page);
});

test('a second user never sees the first user\'s jobs', async () => {
  assert.ok(jobOfA, 'needs the first upload');
  const page = await openPage(env.UI_TOKEN_B);
  await page.locator('#jobs-empty:not([hidden])').waitFor();
  assert.equal(await page.locator('#jobs li.job').count(), 0);
  // A job of A's named in the address: not found, nothing shown.
  await page.evaluate((id) => { location.hash = `#job=${id}`; }, jobOfA);
  await page.locator('.toast', { hasText: 'No such job' }).waitFor({ timeout: 5000 });
  await page.waitForFunction(() => document.getElementById('detail').hidden, null, { timeout: 5000 });
  // A submits while B watches: B's stream carries nothing of it.
  const name = `secret-${RUN}.csv`;
  const sub = await apiAs(env.UI_TOKEN_A, 'POST', `/api/jobs?kind=csv&file_name=${name}`, csv(50));
  assert.equal(sub.status, 202);
  const deadline = Date.now() + 30000;
  while ((await apiAs(env.UI_TOKEN_A, 'GET', `/api/jobs/${sub.body.id}`)).body.status !== 'completed') {
    assert.ok(Date.now() < deadline, 'A\'s job did not complete');
    await new Promise((r) => setTimeout(r, 100));
  }
  // The gateway relays A's events (to A's streams) within milliseconds;
  // a round trip on B's own stream shows B's page got everything sent so far.
  const own = await apiAs(env.UI_TOKEN_B, 'POST', '/api/jobs?kind=noop');
  assert.equal(own.status, 202);
  await page.locator(`#jobs li.job[data-job-id="${own.body.id}"]`).waitFor({ timeout: 10000 });
  assert.equal(await page.locator('#jobs li.job').count(), 1, 'only B\'s own job');
  const text = await page.locator('body').innerText();
  assert.ok(!text.includes(name) && !text.includes(`people-${RUN}`), 'A\'s file names are not on B\'s page');
  await closePage(page, { allow: [/404 \(Not Found\)/] });
});

test('a large import is cancelled from the page; a paused job resumes from the page', async () => {
  const page = await openPage(env.UI_TOKEN_SLOW);
  const big = csv(40000);
  const name = `large-${RUN}.csv`;
  const id = await upload(page, name, big);
  await waitProgress(page, id);
  // Cancel from the in-flight banner, confirmed in the dialog.
  const item = page.locator(`.inflight-item[data-job-id="${id}"]`);
  await item.waitFor();
  await shot(page, 'in-flight');
  // Escape in the confirmation keeps the job running.
  await item.getByRole('button', { name: `Cancel ${name}` }).click();
  await page.locator('dialog#confirm[open]').waitFor();
  await page.keyboard.press('Escape');
  await page.waitForFunction(() => !document.getElementById('confirm').open, null, { timeout: 5000 });
  assert.equal(await rowOf(page, id).getAttribute('data-status'), 'processing');
  await item.getByRole('button', { name: `Cancel ${name}` }).click();
  await page.locator('dialog#confirm[open]').waitFor();
  const clicked = Date.now();
  await page.getByRole('button', { name: 'Cancel import' }).click();
  await waitStatus(page, id, 'cancelled', 10000);
  const took = Date.now() - clicked;
  console.log(`cancel: shown cancelled ${took} ms after the click`);
  assert.ok(took < 8000, `cancelled shown after ${took} ms`);
  await page.locator('.toast', { hasText: `${name} was cancelled` }).waitFor({ timeout: 5000 });
  assert.equal(await page.locator(`.inflight-item[data-job-id="${id}"]`).count(), 0, 'gone from the banner');

  // Pause and resume from the job's page.
  const name2 = `paused-${RUN}.csv`;
  const id2 = await upload(page, name2, csv(24000));
  await rowOf(page, id2).locator('.job-name').click();
  await waitProgress(page, id2);
  await page.locator('#logs li.log').first().waitFor({ timeout: 10000 });
  await shot(page, 'job-running');
  await page.locator('#detail-actions').getByRole('button', { name: `Pause ${name2}` }).click();
  await waitStatus(page, id2, 'paused', 15000);
  await page.locator('#detail-status-badge[data-status="paused"]').waitFor();
  const pausedAt = Number(await page.locator('#detail-progress [role=progressbar]').getAttribute('aria-valuenow'));
  assert.ok(pausedAt < 100, `paused at ${pausedAt} %`);
  assert.deepEqual(await page.locator('#detail-actions button').evaluateAll((b) => b.map((x) => x.dataset.action)), ['cancel', 'resume']);
  await page.locator('#logs li.log', { hasText: /paus/i }).first().waitFor({ timeout: 10000 });
  await shot(page, 'job-paused');
  await page.locator('#detail-actions').getByRole('button', { name: `Resume ${name2}` }).click();
  await waitProgress(page, id2, pausedAt, 30000);
  await waitStatus(page, id2, 'completed', 60000);
  assert.equal((await page.locator('[data-fact="records"]').textContent()).trim(), '24,000 of 24,000 records');
  await closePage(page);
});

test('the gateway restarts while a job runs and the page carries on updating', async () => {
  const page = await openPage(env.UI_TOKEN_SLOW);
  await page.evaluate(() => { window.__sameDocument = true; });
  const name = `restart-${RUN}.csv`;
  const id = await upload(page, name, csv(50000));
  // Every value the bar shows, with the time it showed it.
  await page.evaluate((jobId) => {
    window.__seen = [];
    const bar = document.querySelector(`#jobs li.job[data-job-id="${jobId}"] [role=progressbar]`);
    new MutationObserver(() => window.__seen.push([Date.now(), Number(bar.getAttribute('aria-valuenow'))]))
      .observe(bar, { attributes: true, attributeFilter: ['aria-valuenow'] });
  }, id);
  await waitProgress(page, id, 2);
  await stopGateway();
  await page.locator('#conn[data-state="down"]').waitFor({ timeout: 10000 });
  assert.match(await page.locator('#notice').textContent(), /Connection lost/);
  await shot(page, 'gateway-down');
  const before = Number(await rowOf(page, id).locator('[role=progressbar]').getAttribute('aria-valuenow'));
  await startGateway();
  const back = await page.evaluate(() => Date.now());
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 20000 });
  assert.ok(await page.locator('#notice').isHidden(), 'the notice is gone once live again');
  await waitStatus(page, id, 'completed', 90000);
  const seen = await page.evaluate(() => window.__seen);
  const after = seen.filter(([t, v]) => t >= back && v > before && v < 100);
  assert.ok(after.length >= 1, `live progress after the restart (before ${before} %, seen ${JSON.stringify(seen.slice(-5))})`);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'the page was not reloaded');
  assert.equal((await rowOf(page, id).locator('.job-counts').textContent()).trim(), '50,000 of 50,000 records');
  await closePage(page, { allow: [/ERR_CONNECTION_REFUSED|Failed to fetch|net::ERR_/] });
});

test('a token the gateway refuses gets a clear message and the sign-in form', async () => {
  const page = await openPage(env.UI_TOKEN_FOREIGN, { expectLive: false });
  await page.locator('#signin:not([hidden])').waitFor({ timeout: 10000 });
  assert.match(await page.locator('#signin-reason').textContent(), /refused the token/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('importer.token')), null);
  // Pasting a good token signs in without a reload.
  await page.fill('#token-input', env.UI_TOKEN_A);
  await page.keyboard.press('Tab');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#conn[data-state="live"]').waitFor({ timeout: 10000 });
  await page.locator(`#jobs li.job[data-job-id="${jobOfA}"]`).waitFor({ timeout: 10000 });
  await closePage(page, { allow: [/401 \(Unauthorized\)/] });
});

test('the page works at phone width', async () => {
  const page = await openPage(env.UI_TOKEN_SLOW, { viewport: { width: 390, height: 844 } });
  await page.locator('#jobs li.job').first().waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow} px too wide)`);
  await shot(page, 'phone');
  // The status filter shows only the chosen status.
  await page.selectOption('#status-filter', 'cancelled');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#jobs li.job')];
    return rows.length >= 1 && rows.every((r) => r.dataset.status === 'cancelled');
  }, null, { timeout: 10000 });
  await page.selectOption('#status-filter', 'failed');
  await page.locator('#jobs-empty:not([hidden])', { hasText: 'No failed jobs.' }).waitFor({ timeout: 10000 });
  await closePage(page);
});
