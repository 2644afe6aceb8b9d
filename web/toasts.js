// toasts.js -- short messages in a polite live region; errors stay longer.

import { $, h } from './dom.js';

export function toast(message, kind = 'info', ms = kind === 'error' ? 10000 : 5000) {
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, '×');
  const el = h('div', { class: `toast toast-${kind}` }, h('span', {}, message), close);
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  $('toasts').append(el);
  setTimeout(remove, ms);
  return el;
}
