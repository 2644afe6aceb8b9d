// store.js -- the jobs this page knows, by id, fed by the API and the stream.
//
// A state only replaces an older one (updated_at, RFC 3339 from PostgreSQL,
// compared as an instant), so a slow API answer never undoes a newer event.

import { TERMINAL } from './format.js';

const jobs = new Map();
const listeners = new Set();
const finishListeners = new Set();

// fn(changedIds or null for "everything") after each change.
export function subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); }
// fn(job, previous) when a job this page saw unfinished reaches a terminal state.
export function onFinish(fn) { finishListeners.add(fn); }

function emit(ids) { for (const fn of listeners) fn(ids); }

const instant = (iso) => (iso ? Date.parse(iso) * 1000 + Number((/\.\d{3}(\d*)/.exec(iso) || [, ''])[1].padEnd(3, '0').slice(0, 3)) : 0);

export function upsert(job, { quiet = false } = {}) {
  const prev = jobs.get(job.id);
  if (prev && instant(job.updated_at) < instant(prev.updated_at)) return false;
  jobs.set(job.id, job);
  if (prev && !TERMINAL.has(prev.status) && TERMINAL.has(job.status)) {
    for (const fn of finishListeners) fn(job, prev);
  }
  if (!quiet) emit([job.id]);
  return true;
}

export function upsertMany(list) {
  const changed = list.filter((j) => upsert(j, { quiet: true })).map((j) => j.id);
  if (changed.length) emit(changed);
}

export function remove(id) {
  if (jobs.delete(id)) emit([id]);
}

export function clear() { jobs.clear(); emit(null); }

export const get = (id) => jobs.get(id);

// Newest first, optionally only one status.
export function list(status) {
  return [...jobs.values()]
    .filter((j) => !status || j.status === status)
    .sort((a, b) => instant(b.created_at) - instant(a.created_at) || (a.id < b.id ? 1 : -1));
}
