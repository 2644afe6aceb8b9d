// jobs_list.js -- the jobs list: newest first, filter by status, rows that
// update in place as events arrive, "Show older jobs" through the cursor.

import { $, h, fill } from './dom.js';
import * as api from './api.js';
import * as store from './store.js';
import * as fmt from './format.js';
import { progressBar } from './progress.js';
import { toast } from './toasts.js';

const rows = new Map(); // id -> row element
let filter = '';
let cursor = null; // the next page of the current filter, or null

function makeRow(job) {
  const name = h('a', { class: 'job-name', href: `#job=${job.id}` });
  const kind = h('span', { class: 'badge kind' });
  const statusBadge = h('span', { class: 'badge status' });
  const bar = progressBar(`Progress of ${job.file_name || job.id}`);
  const meta = h('span', { class: 'job-meta muted' });
  const eta = h('span', { class: 'job-eta' });
  const countsEl = h('span', { class: 'job-counts' });
  const row = h('li', { class: 'job', dataset: { jobId: job.id } },
    h('div', { class: 'job-line' }, name, kind, statusBadge),
    bar,
    h('div', { class: 'job-line small' }, countsEl, eta, meta));
  row.update = (j) => {
    name.textContent = j.file_name || '(no file name)';
    kind.textContent = j.kind;
    statusBadge.textContent = fmt.status(j.status) + (fmt.statusNote(j) ? ` (${fmt.statusNote(j)})` : '');
    statusBadge.dataset.status = j.status;
    row.dataset.status = j.status;
    bar.update(j);
    countsEl.textContent = fmt.counts(j);
    eta.textContent = j.status === 'processing' ? fmt.eta(j.eta_seconds) : '';
    row.refreshTime(j);
  };
  row.refreshTime = (j) => {
    if (!j.started_at) meta.textContent = `queued ${fmt.ago(j.created_at)}`;
    else if (j.completed_at) meta.textContent = `started ${fmt.ago(j.started_at)}, took ${fmt.between(j.started_at, j.completed_at)}`;
    else meta.textContent = `started ${fmt.ago(j.started_at)}`;
  };
  return row;
}

export function render() {
  const list = store.list(filter);
  const ul = $('jobs');
  const wanted = list.map((job) => {
    let row = rows.get(job.id);
    if (!row) { row = makeRow(job); rows.set(job.id, row); }
    row.update(job);
    return row;
  });
  for (const [id, row] of rows) if (!store.get(id)) { rows.delete(id); row.remove(); }
  const same = wanted.length === ul.children.length && wanted.every((r, i) => ul.children[i] === r);
  if (!same) fill(ul, wanted);
  $('jobs-empty').hidden = wanted.length > 0;
  $('jobs-empty').textContent = filter ? `No ${fmt.status(filter).toLowerCase()} jobs.` : 'No jobs yet. Import a file to start.';
  $('jobs-more').hidden = !cursor;
}

// Ticks "2 minutes ago" along without waiting for an event.
export function refreshTimes() {
  for (const [id, row] of rows) { const j = store.get(id); if (j) row.refreshTime(j); }
}

export async function load(more = false) {
  try {
    const page = await api.listJobs(filter || undefined, more ? cursor : undefined);
    cursor = page.next;
    store.upsertMany(page.jobs);
    render();
  } catch (e) {
    if (e.status !== 401) toast(`Could not load the jobs: ${e.message}`, 'error');
  }
}

export function init() {
  $('status-filter').addEventListener('change', (ev) => {
    filter = ev.target.value;
    cursor = null;
    render();
    load();
  });
  $('jobs-more').addEventListener('click', () => load(true));
}
