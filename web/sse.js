// sse.js -- the page's one Server-Sent Events stream: GET /api/events
// (?logs_for=<job> for the job on screen), read with fetch so the token goes
// in the Authorization header (never in a URL), the status of a refusal is
// known (401: stop and ask for a token; others: retry), and a reconnect sends
// Last-Event-ID, which makes the gateway send a fresh snapshot and the log
// lines after that id (DESIGN.md "SSE").

import { token } from './auth.js';

const SILENCE_MS = 40000; // the gateway sends a heartbeat at least every 15 s
const MAX_DELAY_MS = 10000;

// Splits a byte stream into SSE events (the parts of the WHATWG parser the
// gateway uses: id, event, data, retry, comments; LF or CRLF line ends).
export class SseParser {
  constructor(onEvent, onRetry) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.buf = '';
    this.reset();
  }

  reset() { this.type = ''; this.data = []; this.id = null; }

  push(text) {
    this.buf += text;
    let nl;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      let line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line);
    }
  }

  line(line) {
    if (line === '') {
      if (this.data.length) this.onEvent(this.type || 'message', this.data.join('\n'), this.id);
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.type = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) this.onRetry(Number(value));
  }
}

// onEvent(type, data object, id); onState(state, detail) with state one of
// 'connecting' ({reconnect}), 'live' ({reconnected}: after a lost stream,
// not a fresh open), 'reconnecting' ({inMs, reason}), 'unauthorized'
// ({message}), 'logs-gone' (the logs_for job no longer exists).
export class EventStream {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.gen = 0;
    this.ctl = null;
    this.retryMs = 1000;
    this.lastId = null;
    this.logsFor = null;
  }

  // (Re)opens the stream, carrying the log lines of logsFor (or none).
  open(logsFor = null) {
    this.close();
    this.logsFor = logsFor;
    this.lastId = null; // a new stream: the whole snapshot and the log history
    const gen = ++this.gen;
    this.run(gen);
  }

  close() {
    this.gen++;
    if (this.ctl) this.ctl.abort();
    this.ctl = null;
  }

  // Reconnects now (e.g. the browser says it is online again).
  kick() { if (this.waking) this.waking(); }

  async run(gen) {
    let delay = 500;
    for (let attempt = 0; gen === this.gen; attempt++) {
      let reason = 'the connection was lost';
      this.onState('connecting', { reconnect: attempt > 0 });
      const ctl = new AbortController();
      this.ctl = ctl;
      try {
        const headers = { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' };
        if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
        const url = `/api/events${this.logsFor ? `?logs_for=${encodeURIComponent(this.logsFor)}` : ''}`;
        const res = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
        if (gen !== this.gen) return;
        if (res.status === 401) {
          const body = await res.json().catch(() => null);
          this.onState('unauthorized', { message: body && body.error ? body.error.message : 'unauthorized' });
          return;
        }
        if (res.status === 404 && this.logsFor) {
          this.logsFor = null;
          this.onState('logs-gone', {});
          continue;
        }
        if (!res.ok || !res.body) {
          reason = res.status === 429 ? 'too many open streams for this user'
            : res.status === 503 ? 'the server is busy or restarting' : `HTTP ${res.status}`;
        } else {
          this.onState('live', { reconnected: attempt > 0 });
          delay = 500;
          await this.read(res.body, ctl, gen);
          reason = 'the server closed the stream';
        }
      } catch (e) {
        if (gen !== this.gen) return;
        reason = e && e.name === 'AbortError' ? 'the stream went silent' : 'the server cannot be reached';
      }
      if (gen !== this.gen) return;
      const wait = Math.max(delay, this.retryMs);
      this.onState('reconnecting', { inMs: wait, reason });
      await new Promise((resolve) => { this.waking = resolve; setTimeout(resolve, wait); });
      this.waking = null;
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  }

  async read(body, ctl, gen) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((type, data, id) => {
      if (gen !== this.gen) return;
      if (id !== null) this.lastId = id;
      let obj;
      try { obj = JSON.parse(data); } catch { return; }
      this.onEvent(type, obj, id);
    }, (ms) => { this.retryMs = Math.min(Math.max(ms, 250), MAX_DELAY_MS); });
    let timer = setTimeout(() => ctl.abort(), SILENCE_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || gen !== this.gen) break;
        clearTimeout(timer);
        timer = setTimeout(() => ctl.abort(), SILENCE_MS);
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(timer);
      reader.cancel().catch(() => {});
    }
  }
}

