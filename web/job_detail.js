// job_detail.js -- one job: status, progress, phase and step, counts (per
// collection for backups), ETA, timings, actions, log and record errors.

import { $, h, fill } from './dom.js';
import * as fmt from './format.js';
import * as store from './store.js';
import { progressBar } from './progress.js';
import { allowedActions, actionButtons } from './actions.js';
import * as logsView from './logs_view.js';
import * as errorsView from './errors_view.js';

let current = null; // the job id on screen
let bar = null;
let shownActions = '';

export const viewing = () => current;

export function open(id) {
  current = id;
  shownActions = '';
  bar = progressBar('Progress');
  fill($('detail-progress'), bar);
  logsView.reset(id);
  $('detail').hidden = false;
  const job = store.get(id);
  fill($('detail-facts'));
  fill($('detail-counts'));
  $('detail-title').textContent = job ? job.file_name || 'Job' : 'Job';
  if (job) { render(job); errorsView.reset(job); }
}

export function close() {
  current = null;
  $('detail').hidden = true;
}

// The job arrived (first load) or changed.
export function update(job) {
  if (job.id !== current) return;
  const first = !bar.hasAttribute('aria-valuenow');
  render(job);
  if (first) errorsView.reset(job); else errorsView.jobChanged(job);
}

function fact(term, value, key) {
  return [h('dt', {}, term), h('dd', { dataset: { fact: key } }, value)];
}

function render(job) {
  $('detail-title').textContent = job.file_name || '(no file name)';
  bar.setAttribute('aria-label', `Progress of ${job.file_name || job.id}`);
  bar.update(job);
  const note = fmt.statusNote(job);
  fill($('detail-status'),
    h('span', { class: 'badge status', dataset: { status: job.status }, id: 'detail-status-badge' }, fmt.status(job.status)),
    note ? h('span', { class: 'muted' }, ` ${note}`) : null,
    job.status === 'processing' ? h('span', {}, ` · ${fmt.phase(job.phase)}`) : null,
    job.current_step && job.status === 'processing' ? h('span', { class: 'muted', id: 'detail-step' }, ` · ${job.current_step}`) : null,
    job.status === 'processing' && job.eta_seconds !== null ? h('span', {}, ` · ${fmt.eta(job.eta_seconds)}`) : null);
  // Rebuilt only when the set of actions changes, so focus stays put.
  const acts = allowedActions(job).join(',');
  if (acts !== shownActions) {
    const focused = document.activeElement && $('detail-actions').contains(document.activeElement)
      ? document.activeElement.dataset.action : null;
    shownActions = acts;
    fill($('detail-actions'), actionButtons(job));
    const again = focused && $('detail-actions').querySelector(`[data-action="${focused}"]`);
    if (again) again.focus();
  }
  $('detail-error').textContent = job.error_message ? `Error: ${job.error_message}` : '';
  const c = job.counts || {};
  const started = job.started_at;
  fill($('detail-facts'),
    fact('Records', fmt.counts(job), 'records'),
    fact('Inserted', fmt.num(c.inserted || 0), 'inserted'),
    fact('Updated', fmt.num(c.updated || 0), 'updated'),
    c.unchanged ? fact('Unchanged', fmt.num(c.unchanged), 'unchanged') : null,
    fact('Failed', fmt.num(job.failed_items || 0), 'failed'),
    fact('Kind', job.kind, 'kind'),
    fact('Collection', job.collection || '–', 'collection'),
    fact('Mode', `${job.import_mode}${job.dry_run ? ' (dry run: nothing written)' : ''}`, 'mode'),
    fact('File size', fmt.bytes(job.file_size), 'size'),
    fact('Submitted', `${fmt.when(job.created_at)} (${fmt.ago(job.created_at)})`, 'created'),
    fact('Waited', started ? fmt.between(job.created_at, started) : fmt.ACTIVE.has(job.status) ? `${fmt.between(job.created_at)} so far` : '–', 'waited'),
    fact('Started', started ? fmt.when(started) : '–', 'started'),
    fact(job.completed_at ? 'Took' : 'Running for',
      started && (job.completed_at || job.status === 'processing') ? fmt.between(started, job.completed_at) : '–', 'took'),
    fact('Finished', fmt.when(job.completed_at), 'finished'),
    fact('Attempts', `${job.attempts} of ${job.max_attempts}`, 'attempts'),
    fact('Job id', h('code', {}, job.id), 'id'));
  const cols = c.collections && Object.keys(c.collections).length > 1 || job.kind === 'backup' ? c.collections || {} : null;
  fill($('detail-counts'), cols ? h('table', { class: 'counts-table' },
    h('caption', {}, 'Per collection'),
    h('thead', {}, h('tr', {}, ['Collection', 'Inserted', 'Updated', 'Unchanged', 'Failed'].map((t, i) => h('th', { scope: 'col', class: i ? 'num' : null }, t)))),
    h('tbody', {}, Object.entries(cols).map(([name, v]) => h('tr', {},
      h('th', { scope: 'row' }, name), h('td', { class: 'num' }, fmt.num(v.inserted || 0)),
      h('td', { class: 'num' }, fmt.num(v.updated || 0)), h('td', { class: 'num' }, fmt.num(v.unchanged || 0)),
      h('td', { class: 'num' }, fmt.num(v.failed || 0)))))) : null);
}

export function refreshTimes() {
  const job = current && store.get(current);
  if (job) render(job);
}
