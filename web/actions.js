// actions.js -- which of Cancel, Pause, Resume, Retry, Delete a job's state
// allows (DESIGN.md's lifecycle table), and doing them with confirmation for
// the destructive ones.

import { h } from './dom.js';
import * as api from './api.js';
import * as store from './store.js';
import { confirmAction } from './confirm.js';
import { toast } from './toasts.js';

const ACTIONS = [
  {
    id: 'cancel', label: 'Cancel',
    allowed: (j) => ['pending', 'paused'].includes(j.status) || (j.status === 'processing' && !j.cancel_requested),
    confirm: (j) => ['Cancel this import?', `The import of ${j.file_name || 'this file'} stops. Records already written stay.`, 'Cancel import'],
    run: (j) => api.jobAction(j.id, 'cancel'),
  },
  {
    id: 'pause', label: 'Pause',
    allowed: (j) => j.status === 'pending' || (j.status === 'processing' && !j.pause_requested && !j.cancel_requested),
    run: (j) => api.jobAction(j.id, 'pause'),
  },
  {
    id: 'resume', label: 'Resume',
    allowed: (j) => j.status === 'paused' || (j.status === 'processing' && j.pause_requested && !j.cancel_requested),
    run: (j) => api.jobAction(j.id, 'resume'),
  },
  {
    id: 'retry', label: 'Retry',
    allowed: (j) => j.status === 'failed' || j.status === 'cancelled',
    run: (j) => api.jobAction(j.id, 'retry'),
  },
  {
    id: 'restart', label: 'Start over',
    allowed: (j) => j.status === 'failed' || j.status === 'cancelled',
    confirm: (j) => ['Start over from the beginning?', 'Progress, counts and record errors of this job are cleared and the whole file is read again.', 'Start over'],
    run: (j) => api.jobAction(j.id, 'retry', { restart: true }),
  },
  {
    id: 'delete', label: 'Delete',
    allowed: (j) => ['completed', 'failed', 'cancelled'].includes(j.status),
    confirm: (j) => ['Delete this job?', `The job, its log and its record errors are removed. Imported records stay.`, 'Delete job'],
    run: async (j) => { await api.deleteJob(j.id); store.remove(j.id); return null; },
  },
];

export const allowedActions = (job) => ACTIONS.filter((a) => a.allowed(job)).map((a) => a.id);

async function perform(action, job) {
  if (action.confirm) {
    const [title, text, ok] = action.confirm(job);
    if (!(await confirmAction(title, text, ok))) return;
  }
  try {
    const updated = await action.run(job);
    if (updated) store.upsert(updated);
  } catch (e) {
    toast(`${action.label} failed: ${e.message}`, 'error');
  }
}

// Buttons for the actions the job allows now; only: a subset of action ids.
export function actionButtons(job, only = null) {
  const name = job.file_name || job.id;
  return ACTIONS.filter((a) => a.allowed(job) && (!only || only.includes(a.id))).map((a) => h('button', {
    type: 'button',
    class: `action action-${a.id}${a.confirm ? ' destructive' : ''}`,
    'data-action': a.id,
    'aria-label': `${a.label} ${name}`,
    onclick: (ev) => {
      const btn = ev.currentTarget;
      btn.disabled = true;
      perform(a, store.get(job.id) || job).finally(() => { btn.disabled = false; });
    },
  }, a.label));
}
