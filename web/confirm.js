// confirm.js -- a modal question for destructive actions (native <dialog>:
// focus is trapped, Escape answers no).

import { $ } from './dom.js';

export function confirmAction(title, text, okLabel) {
  const dlg = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
    $('confirm-ok').focus();
  });
}
