// format.js -- numbers, sizes, durations and times in words people read.

export const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
export const ACTIVE = new Set(['pending', 'processing', 'paused']);

const nf = new Intl.NumberFormat('en');
export const num = (n) => (n === null || n === undefined ? '–' : nf.format(n));

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function percent(p) {
  const v = Math.max(0, Math.min(100, Number(p) || 0));
  return v === 100 || v === 0 ? v : Math.floor(v * 10) / 10;
}

// A span of seconds: "45 seconds", "about 3 minutes", "1 hour 20 minutes".
export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? '' : 's'}`;
  const hrs = Math.floor(s / 3600);
  const rest = Math.round((s % 3600) / 60);
  return `${hrs} hour${hrs === 1 ? '' : 's'}${rest ? ` ${rest} minute${rest === 1 ? '' : 's'}` : ''}`;
}

// An ETA: "a few seconds left", "about 2 minutes left".
export function eta(seconds) {
  if (seconds === null || seconds === undefined) return '';
  if (seconds < 10) return 'a few seconds left';
  if (seconds < 60) return 'less than a minute left';
  return `about ${span(seconds)} left`;
}

// "just now", "2 minutes ago", "3 hours ago", then the date.
export function ago(iso, now = Date.now()) {
  if (!iso) return '';
  const t = Date.parse(iso);
  const d = Math.round((now - t) / 1000);
  if (d < 10) return 'just now';
  if (d < 60) return `${d} seconds ago`;
  if (d < 3600) { const m = Math.round(d / 60); return `${m} minute${m === 1 ? '' : 's'} ago`; }
  if (d < 86400) { const hr = Math.round(d / 3600); return `${hr} hour${hr === 1 ? '' : 's'} ago`; }
  return new Date(t).toLocaleString();
}

export const when = (iso) => (iso ? new Date(Date.parse(iso)).toLocaleString() : '–');

export function between(a, b) {
  if (!a) return '–';
  const end = b ? Date.parse(b) : Date.now();
  return span((end - Date.parse(a)) / 1000);
}

const PHASES = { queued: 'Queued', reading: 'Reading', importing: 'Importing', finalizing: 'Finalizing', done: 'Done' };
export const phase = (p) => PHASES[p] || p || '';

const STATUS = {
  pending: 'Pending', processing: 'Processing', paused: 'Paused',
  completed: 'Completed', failed: 'Failed', cancelled: 'Cancelled',
};
export const status = (s) => STATUS[s] || s;

// What the status line says beyond the status, e.g. "cancelling…".
export function statusNote(job) {
  if (job.status === 'processing' && job.cancel_requested) return 'cancelling…';
  if (job.status === 'processing' && job.pause_requested) return 'pausing…';
  if (job.status === 'pending' && job.attempts > 0) return `retry ${job.attempts} of ${job.max_attempts}`;
  return '';
}

// "1,200 of ~5,000 records · 3 failed"
export function counts(job) {
  const total = job.total_items === null || job.total_items === undefined
    ? '' : ` of ${job.total_is_estimate ? '~' : ''}${num(job.total_items)}`;
  const failed = job.failed_items ? ` · ${num(job.failed_items)} failed` : '';
  return `${num(job.processed_items || 0)}${total} records${failed}`;
}
