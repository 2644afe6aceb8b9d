// banner.js -- the global banner of jobs in flight: phase, percent, ETA,
// Cancel and "View logs". Items are kept by job id and updated in place, so
// a click or the keyboard focus is never lost to a progress event.

import { $, h, fill } from './dom.js';
import * as store from './store.js';
import * as fmt from './format.js';
import { progressBar } from './progress.js';
import { allowedActions, actionButtons } from './actions.js';

const SHOWN = 3;
const items = new Map(); // id -> li

function makeItem(job) {
  const label = job.file_name || job.id;
  const bar = progressBar(`Progress of ${label}`);
  const phase = h('span', { class: 'inflight-phase' });
  const eta = h('span', { class: 'inflight-eta muted' });
  const cancel = h('span', { class: 'inflight-cancel' });
  const li = h('li', { class: 'inflight-item', dataset: { jobId: job.id } },
    h('span', { class: 'inflight-name' }, label), phase, bar, eta,
    h('span', { class: 'inflight-actions' }, cancel,
      h('a', { href: `#job=${job.id}`, class: 'button quiet', 'aria-label': `View logs of ${label}` }, 'View logs')));
  let cancellable = null;
  li.update = (j) => {
    li.dataset.status = j.status;
    const note = fmt.statusNote(j);
    phase.textContent = (j.status === 'processing' ? fmt.phase(j.phase) : fmt.status(j.status)) + (note ? ` (${note})` : '');
    bar.update(j);
    eta.textContent = j.status === 'processing' ? fmt.eta(j.eta_seconds) : '';
    const can = allowedActions(j).includes('cancel');
    if (can !== cancellable) {
      cancellable = can;
      fill(cancel, actionButtons(j, ['cancel']));
    }
  };
  return li;
}

export function render() {
  const active = store.list().filter((j) => fmt.ACTIVE.has(j.status));
  // The running ones first, then the queued and paused ones (newest first within).
  active.sort((a, b) => (a.status === 'processing' ? 0 : 1) - (b.status === 'processing' ? 0 : 1));
  const shown = active.slice(0, SHOWN);
  const wanted = shown.map((job) => {
    let li = items.get(job.id);
    if (!li) { li = makeItem(job); items.set(job.id, li); }
    li.update(job);
    return li;
  });
  for (const [id, li] of items) if (!shown.some((j) => j.id === id)) { items.delete(id); li.remove(); }
  const ul = $('inflight-list');
  const more = active.length > SHOWN ? `and ${active.length - SHOWN} more in the list below` : '';
  const current = [...ul.children].filter((c) => c.classList.contains('inflight-item'));
  const same = current.length === wanted.length && wanted.every((li, i) => current[i] === li);
  if (!same) fill(ul, wanted);
  let moreEl = ul.querySelector('.inflight-more');
  if (more && !moreEl) { moreEl = h('li', { class: 'inflight-more muted' }); ul.append(moreEl); }
  if (moreEl) { if (more) moreEl.textContent = more; else moreEl.remove(); }
  $('inflight').hidden = active.length === 0;
}
