// api.js -- the gateway's JSON API (DESIGN.md "HTTP API"), token in the
// Authorization header. Errors become ApiError with the server's message.

import { token } from './auth.js';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.code = code;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export async function call(method, path, { query, body, headers = {} } = {}) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')).toString() : '';
  let res;
  try {
    res = await fetch(path + (qs ? `?${qs}` : ''), {
      method,
      body,
      headers: { Authorization: `Bearer ${token()}`, ...headers },
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'The server cannot be reached.');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON: a proxy or libevent's own page */ }
  if (!res.ok) {
    const err = data && data.error ? data.error : { code: `http_${res.status}`, message: `HTTP ${res.status}` };
    if (res.status === 401) onUnauthorized(err.message);
    throw new ApiError(res.status, err.code, res.status === 413 ? 'The file is larger than the server accepts.' : err.message);
  }
  return data;
}

export const listJobs = (status, cursor, limit = 50) => call('GET', '/api/jobs', { query: { status, cursor, limit } });
export const getJob = (id) => call('GET', `/api/jobs/${id}`);
export const jobAction = (id, action, query) => call('POST', `/api/jobs/${id}/${action}`, { query });
export const deleteJob = (id) => call('DELETE', `/api/jobs/${id}`);
export const jobErrors = (id, after, limit) => call('GET', `/api/jobs/${id}/errors`, { query: { after, limit } });

// Above this a file goes up in chunks (POST /api/uploads, PUT …/chunks/{seq}).
export const SINGLE_UPLOAD_MAX = 8 * 1024 * 1024;
const CHUNK = 1024 * 1024;

// Submits a file; onProgress(sentBytes, totalBytes). Returns the job.
export async function submitFile(file, options, onProgress = () => {}) {
  const query = { ...options, file_name: file.name };
  const idem = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  const headers = { 'Idempotency-Key': idem }; // a retried click never makes two jobs
  if (file.size <= SINGLE_UPLOAD_MAX) {
    onProgress(0, file.size);
    const job = await call('POST', '/api/jobs', {
      query, body: file, headers: { ...headers, 'Content-Type': 'application/octet-stream' },
    });
    onProgress(file.size, file.size);
    return job;
  }
  const { upload_id: uploadId } = await call('POST', '/api/uploads', { query: { file_name: file.name } });
  for (let seq = 0, off = 0; off < file.size; seq++, off += CHUNK) {
    await call('PUT', `/api/uploads/${uploadId}/chunks/${seq}`, {
      body: file.slice(off, off + CHUNK), headers: { 'Content-Type': 'application/octet-stream' },
    });
    onProgress(Math.min(off + CHUNK, file.size), file.size);
  }
  return call('POST', '/api/jobs', { query: { ...query, upload_id: uploadId }, headers });
}
