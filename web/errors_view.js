// errors_view.js -- the viewed job's record errors: a paged table and
// "Download errors as CSV" (every page, fetched with the token in a header).

import { $, h, fill } from './dom.js';
import * as api from './api.js';
import * as fmt from './format.js';
import { toast } from './toasts.js';

const PAGE = 50;
let job = null;
let afters = [0]; // the cursor of each page visited; the last is the current page
let next = null;
let loading = null;
let shownFailed = -1;

export function reset(j) {
  job = j;
  afters = [0];
  next = null;
  shownFailed = -1;
  fill($('errors'), h('p', { class: 'muted' }, 'Loading…'));
  load();
}

// Called on every state of the viewed job: re-reads when errors were added.
export function jobChanged(j) {
  if (!job || j.id !== job.id) return;
  job = j;
  if (j.failed_items !== shownFailed && !loading) load();
}

async function load() {
  const id = job.id;
  const failedAtStart = job.failed_items;
  loading = api.jobErrors(id, afters[afters.length - 1], PAGE);
  try {
    const page = await loading;
    if (!job || job.id !== id) return;
    next = page.next;
    shownFailed = failedAtStart;
    render(page.errors);
  } catch (e) {
    if (job && job.id === id && e.status !== 404) fill($('errors'), h('p', { class: 'error' }, `Could not load the record errors: ${e.message}`));
  } finally {
    loading = null;
    if (job && job.id === id && job.failed_items !== shownFailed && shownFailed !== -1) load();
  }
}

function render(errors) {
  const first = (afters.length - 1) * PAGE;
  const total = job.failed_items || 0;
  if (!errors.length && afters.length === 1) {
    fill($('errors'), h('p', { class: 'muted', id: 'errors-none' }, total ? `${fmt.num(total)} failed records, none stored.` : 'No record errors.'));
    return;
  }
  const table = h('table', { class: 'errors-table' },
    h('caption', {}, `Failed records ${fmt.num(first + 1)}–${fmt.num(first + errors.length)}${total ? ` of ${fmt.num(total)}` : ''}`),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', class: 'num' }, 'Record'), h('th', { scope: 'col' }, 'Key'),
      h('th', { scope: 'col' }, 'Collection'), h('th', { scope: 'col' }, 'Problem'))),
    h('tbody', {}, errors.map((e) => h('tr', {},
      h('td', { class: 'num' }, e.record_index === null ? '–' : fmt.num(e.record_index)),
      h('td', {}, e.record_key ?? '–'),
      h('td', {}, e.collection ?? '–'),
      h('td', {}, e.message)))));
  const prev = h('button', { type: 'button', class: 'quiet', disabled: afters.length === 1, onclick: () => { afters.pop(); load(); } }, 'Previous');
  const nextBtn = h('button', { type: 'button', class: 'quiet', disabled: !next, onclick: () => { afters.push(next); load(); } }, 'Next');
  const dl = h('button', { type: 'button', id: 'errors-download', onclick: download }, 'Download errors as CSV');
  fill($('errors'), h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'row' }, h('span', { role: 'group', 'aria-label': 'Record error pages', class: 'row' }, prev, nextBtn), dl));
}

function csvField(v) {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export async function download() {
  const j = job;
  const lines = ['record_index,record_key,collection,message'];
  try {
    for (let after = 0; ;) {
      const page = await api.jobErrors(j.id, after, 1000);
      for (const e of page.errors) lines.push([e.record_index, e.record_key, e.collection, e.message].map(csvField).join(','));
      if (page.next === null || page.next === undefined || !page.errors.length) break;
      after = page.next;
    }
  } catch (e) {
    toast(`Could not download the record errors: ${e.message}`, 'error');
    return;
  }
  const blob = new Blob([`${lines.join('\r\n')}\r\n`], { type: 'text/csv;charset=utf-8' });
  const url = URL.createObjectURL(blob);
  const base = (j.file_name || 'job').replace(/\.[^.]*$/, '').replace(/[^A-Za-z0-9._-]+/g, '_');
  const a = h('a', { href: url, download: `${base}-errors-${j.id.slice(0, 8)}.csv`, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}
