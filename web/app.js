// app.js -- the page: sign-in, the one event stream, and wiring the views
// to the job store. Routes: #job=<id> shows a job; anything else the list.

import { $ } from './dom.js';
import * as auth from './auth.js';
import * as api from './api.js';
import * as store from './store.js';
import * as fmt from './format.js';
import { EventStream } from './sse.js';
import { toast } from './toasts.js';
import * as upload from './upload.js';
import * as jobsList from './jobs_list.js';
import * as banner from './banner.js';
import * as detail from './job_detail.js';
import * as logsView from './logs_view.js';

let expiryTimer = null;
let started = false;

const stream = new EventStream(onEvent, onState);

function onEvent(type, data) {
  if (type === 'job') store.upsert(data);
  else if (type === 'deleted') store.remove(data.id);
  else if (type === 'log' && detail.viewing() && stream.logsFor === detail.viewing()) logsView.append(data);
}

function setConn(state, text) {
  const el = $('conn');
  el.dataset.state = state;
  el.textContent = text;
}

function showNotice(text) {
  const el = $('notice');
  el.hidden = !text;
  el.textContent = text || '';
}

let reconnectTimer = null;
function onState(state, d) {
  clearInterval(reconnectTimer);
  if (state === 'connecting') {
    setConn('connecting', d.reconnect ? 'Reconnecting…' : 'Connecting…');
  } else if (state === 'live') {
    setConn('live', 'Live');
    showNotice('');
    if (d.reconnected) resync(); // events may have been missed meanwhile
  } else if (state === 'reconnecting') {
    const at = Date.now() + d.inMs;
    const tick = () => {
      const s = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setConn('down', `Offline, retrying in ${s} s`);
      showNotice(`Connection lost: ${d.reason}. Retrying in ${s} s; the page catches up by itself when the server is back.`);
    };
    tick();
    reconnectTimer = setInterval(tick, 1000);
  } else if (state === 'unauthorized') {
    signOut(`The server refused the token (${d.message}). It may have expired: paste a new one.`);
  } else if (state === 'logs-gone') {
    toast('That job no longer exists.', 'error');
    location.hash = '';
  }
}

// After a reconnect: the stream sent a fresh snapshot; the list page and the
// viewed job are read again for what the snapshot does not cover.
function resync() {
  jobsList.load();
  const id = detail.viewing();
  if (id) api.getJob(id).then((j) => store.upsert(j)).catch((e) => { if (e.status === 404) { store.remove(id); location.hash = ''; } });
}

store.subscribe((ids) => {
  jobsList.render();
  banner.render();
  const id = detail.viewing();
  if (id && (ids === null || ids.includes(id))) {
    const job = store.get(id);
    if (job) detail.update(job);
    else if (ids !== null) { toast('The job was deleted.'); location.hash = ''; }
  }
});

let lastStatus = new Map();
store.subscribe((ids) => {
  // Status changes are announced to screen readers (the viewed job's always).
  for (const id of ids || []) {
    const j = store.get(id);
    if (!j) continue;
    const before = lastStatus.get(id);
    lastStatus.set(id, j.status);
    if (before && before !== j.status && id === detail.viewing()) {
      $('announce').textContent = `${j.file_name || 'Job'}: ${fmt.status(j.status)}`;
    }
  }
});

store.onFinish((job) => {
  const name = job.file_name || 'The job';
  if (job.status === 'completed') {
    toast(`${name} completed: ${fmt.counts(job)}.`, job.failed_items ? 'warn' : 'success');
  } else if (job.status === 'failed') {
    toast(`${name} failed${job.error_message ? `: ${job.error_message}` : '.'}`, 'error');
  } else {
    toast(`${name} was cancelled.`, 'info');
  }
});

function route(force = false) {
  const m = /^#job=([0-9a-f-]{36})$/i.exec(location.hash);
  const id = m ? m[1].toLowerCase() : null;
  if (id === detail.viewing() && !force) return;
  if (id) {
    detail.open(id);
    api.getJob(id).then((j) => store.upsert(j), (e) => {
      if (e.status === 404) { toast('No such job (or not yours).', 'error'); location.hash = ''; }
    });
    $('detail-title').focus();
  } else {
    detail.close();
  }
  stream.open(id); // one stream per tab; it carries the viewed job's log
}

function signOut(reason) {
  auth.clearToken();
  clearTimeout(expiryTimer);
  stream.close();
  clearInterval(reconnectTimer);
  store.clear();
  detail.close();
  started = false;
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('signin').hidden = false;
  showNotice('');
  setConn('idle', 'Not signed in');
  $('signin-reason').textContent = reason || 'Paste the access token (a JWT) you were given.';
  $('signin-reason').className = reason ? 'error' : 'muted';
  $('token-input').focus();
}

function start() {
  const left = auth.msLeft();
  if (left !== null && left <= 0) {
    signOut('This token has expired. Paste a new one.');
    return;
  }
  started = true;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  clearTimeout(expiryTimer);
  if (left !== null && left < 2 ** 31) {
    expiryTimer = setTimeout(() => signOut('Your token has expired. Paste a new one to carry on.'), left);
  }
  jobsList.load();
  route(true);
}

function init() {
  api.setUnauthorizedHandler((msg) => {
    if (started) signOut(`The server refused the token (${msg}). It may have expired: paste a new one.`);
  });
  upload.init();
  jobsList.init();
  logsView.init();
  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('token-input').value.trim();
    if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(t)) {
      $('signin-error').textContent = 'That is not a token: a JWT is three dot-separated parts.';
      return;
    }
    $('signin-error').textContent = '';
    $('token-input').value = '';
    auth.setToken(t);
    start();
  });
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  $('detail-close').addEventListener('click', (ev) => { ev.preventDefault(); location.hash = ''; });
  window.addEventListener('hashchange', () => { if (started) route(); });
  window.addEventListener('online', () => stream.kick());
  setInterval(() => { if (started) { jobsList.refreshTimes(); detail.refreshTimes(); } }, 15000);
  if (auth.loadToken()) start();
  else signOut();
}

init();
