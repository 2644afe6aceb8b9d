// progress.js -- an accessible progress bar (role=progressbar, aria values).

import { h } from './dom.js';
import * as fmt from './format.js';

export function progressBar(label) {
  const fill = h('div', { class: 'bar-fill' });
  const text = h('span', { class: 'bar-text' });
  const el = h('div', {
    class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': label,
  }, fill, text);
  el.update = (job) => {
    const p = fmt.percent(job.progress);
    el.setAttribute('aria-valuenow', String(p));
    const eta = fmt.ACTIVE.has(job.status) ? fmt.eta(job.eta_seconds) : '';
    el.setAttribute('aria-valuetext', `${p}%${eta ? `, ${eta}` : ''}`);
    el.dataset.status = job.status;
    fill.style.width = `${p}%`;
    text.textContent = `${p}%`;
  };
  return el;
}
