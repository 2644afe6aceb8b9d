// logs_view.js -- the viewed job's log lines as they arrive on the stream,
// coloured by level, following the tail unless the reader scrolled up.

import { $, h } from './dom.js';

const MAX_LINES = 2000;
let jobId = null;
let seen = new Set();

const box = () => $('logs');
const follow = () => $('logs-follow');

export function reset(id) {
  jobId = id;
  seen = new Set();
  box().replaceChildren(h('li', { class: 'log-empty muted' }, 'No log lines yet.'));
  follow().checked = true;
}

function time(ts) {
  const d = new Date(Date.parse(ts));
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString();
}

// line: {id, ts, level, event, message, details} for the job being viewed.
export function append(line) {
  if (!jobId || seen.has(line.id)) return;
  seen.add(line.id);
  const el = box();
  const empty = el.querySelector('.log-empty');
  if (empty) empty.remove();
  const level = ['debug', 'info', 'warn', 'error'].includes(line.level) ? line.level : 'info';
  const details = line.details && Object.keys(line.details).length ? JSON.stringify(line.details) : '';
  const li = h('li', { class: `log log-${level}`, dataset: { id: line.id, level } },
    h('time', { datetime: line.ts }, time(line.ts)),
    h('span', { class: 'log-level' }, level),
    h('span', { class: 'log-msg' }, line.message || line.event || ''),
    line.event && line.message ? h('span', { class: 'log-event muted' }, line.event) : null,
    details ? h('code', { class: 'log-details' }, details) : null);
  // Lines arrive in id order, except history after a reconnect: keep order.
  let before = null;
  for (let c = el.lastElementChild; c && Number(c.dataset.id) > line.id; c = c.previousElementSibling) before = c;
  el.insertBefore(li, before);
  while (el.children.length > MAX_LINES) el.firstElementChild.remove();
  if (follow().checked) el.scrollTop = el.scrollHeight;
}

export function init() {
  box().addEventListener('scroll', () => {
    const el = box();
    follow().checked = el.scrollHeight - el.scrollTop - el.clientHeight < 8;
  });
  follow().addEventListener('change', () => { if (follow().checked) box().scrollTop = box().scrollHeight; });
}
