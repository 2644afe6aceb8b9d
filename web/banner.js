// banner.js -- the global banner of jobs in flight: phase, percent, ETA,
// Cancel and "View logs".

import { $, h, fill } from './dom.js';
import * as store from './store.js';
import * as fmt from './format.js';
import { progressBar } from './progress.js';
import { actionButtons } from './actions.js';

const SHOWN = 3;

function item(job) {
  const bar = progressBar(`Progress of ${job.file_name || job.id}`);
  bar.update(job);
  const note = fmt.statusNote(job);
  const eta = job.status === 'processing' ? fmt.eta(job.eta_seconds) : '';
  return h('li', { class: 'inflight-item', dataset: { jobId: job.id, status: job.status } },
    h('span', { class: 'inflight-name' }, job.file_name || job.id),
    h('span', { class: 'inflight-phase' },
      job.status === 'processing' ? fmt.phase(job.phase) : fmt.status(job.status), note ? ` (${note})` : ''),
    bar,
    h('span', { class: 'inflight-eta muted' }, eta),
    h('span', { class: 'inflight-actions' },
      actionButtons(job, ['cancel']),
      h('a', { href: `#job=${job.id}`, class: 'button quiet', 'aria-label': `View logs of ${job.file_name || job.id}` }, 'View logs')));
}

export function render() {
  const active = store.list().filter((j) => fmt.ACTIVE.has(j.status));
  // The running ones first, then the queued and paused ones.
  active.sort((a, b) => (a.status === 'processing' ? 0 : 1) - (b.status === 'processing' ? 0 : 1));
  const ul = $('inflight-list');
  // Rebuilt only when something changed; a focused button survives an
  // unrelated event because its row stays the same node otherwise.
  const key = JSON.stringify(active.slice(0, SHOWN).map((j) => [j.id, j.updated_at]));
  if (ul.dataset.key === key && ul.dataset.count === String(active.length)) return;
  const focusedAction = document.activeElement && ul.contains(document.activeElement)
    ? document.activeElement.getAttribute('aria-label') : null;
  ul.dataset.key = key;
  ul.dataset.count = String(active.length);
  fill(ul, active.slice(0, SHOWN).map(item),
    active.length > SHOWN ? h('li', { class: 'muted' }, `and ${active.length - SHOWN} more in the list below`) : null);
  if (focusedAction) {
    const again = [...ul.querySelectorAll('[aria-label]')].find((el) => el.getAttribute('aria-label') === focusedAction);
    if (again) again.focus();
  }
  $('inflight').hidden = active.length === 0;
}
