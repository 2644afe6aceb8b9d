// web_units.test.js -- the page's pure parts, in Node without a browser:
// the SSE parser, the lifecycle rules for the action buttons, kind inference
// and the wording of times. Run by tests/e2e/ui.sh before the browser spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../../web/sse.js';
import { allowedActions } from '../../../web/actions.js';
import { kindFor } from '../../../web/upload.js';
import * as fmt from '../../../web/format.js';

function parse(chunks) {
  const events = [];
  const retries = [];
  const p = new SseParser((type, data, id) => events.push({ type, data, id }), (ms) => retries.push(ms));
  for (const c of chunks) p.push(c);
  return { events, retries };
}

const STREAM = 'retry: 2000\n\n: ping\n\nid: 7\nevent: job\ndata: {"a":1}\n\n'
  + 'id: 8\r\nevent: log\r\ndata: line one\r\ndata: line two\r\n\r\n'
  + 'data:no space\n\nevent: end\n\nid: 9\nevent: deleted\ndata: {"id":"x"}\n\n';
const WANT = [
  { type: 'job', data: '{"a":1}', id: '7' },
  { type: 'log', data: 'line one\nline two', id: '8' },
  { type: 'message', data: 'no space', id: null },
  { type: 'deleted', data: '{"id":"x"}', id: '9' },
];

test('SSE: events, ids, multi-line data, comments, retry, CRLF', () => {
  const { events, retries } = parse([STREAM]);
  assert.deepEqual(events, WANT, 'an event without data is not dispatched');
  assert.deepEqual(retries, [2000]);
});

test('SSE: the same events whatever the chunk boundaries', () => {
  for (let i = 0; i <= STREAM.length; i++) {
    for (const j of [i, Math.min(STREAM.length, i + 3)]) {
      const { events } = parse([STREAM.slice(0, i), STREAM.slice(i, j), STREAM.slice(j)]);
      assert.deepEqual(events, WANT, `split at ${i}, ${j}`);
    }
  }
  assert.deepEqual(parse(STREAM.split('')).events, WANT, 'one character at a time');
});

test('actions follow the lifecycle table', () => {
  const job = (status, extra = {}) => ({ id: 'j', status, cancel_requested: false, pause_requested: false, ...extra });
  assert.deepEqual(allowedActions(job('pending')), ['cancel', 'pause']);
  assert.deepEqual(allowedActions(job('processing')), ['cancel', 'pause']);
  assert.deepEqual(allowedActions(job('processing', { pause_requested: true })), ['cancel', 'resume']);
  assert.deepEqual(allowedActions(job('processing', { cancel_requested: true })), []);
  assert.deepEqual(allowedActions(job('paused')), ['cancel', 'resume']);
  assert.deepEqual(allowedActions(job('completed')), ['delete']);
  assert.deepEqual(allowedActions(job('failed')), ['retry', 'restart', 'delete']);
  assert.deepEqual(allowedActions(job('cancelled')), ['retry', 'restart', 'delete']);
});

test('kind from the file extension', () => {
  assert.equal(kindFor('a.csv'), 'csv');
  assert.equal(kindFor('A.TSV'), 'csv');
  assert.equal(kindFor('x.ndjson'), 'ndjson');
  assert.equal(kindFor('x.jsonl'), 'ndjson');
  assert.equal(kindFor('backup.2026.json'), 'backup');
  assert.equal(kindFor('no-extension'), 'csv');
});

test('times and sizes in words', () => {
  assert.equal(fmt.eta(null), '');
  assert.equal(fmt.eta(3), 'a few seconds left');
  assert.equal(fmt.eta(45), 'less than a minute left');
  assert.equal(fmt.eta(125), 'about 2 minutes left');
  assert.equal(fmt.eta(3 * 3600 + 20 * 60), 'about 3 hours 20 minutes left');
  const now = Date.parse('2026-11-25T10:00:00Z');
  assert.equal(fmt.ago('2026-11-25T09:59:58.5+00:00', now), 'just now');
  assert.equal(fmt.ago('2026-11-25T09:58:00+00:00', now), '2 minutes ago');
  assert.equal(fmt.ago('2026-11-25T09:00:00+00:00', now), '1 hour ago');
  assert.equal(fmt.bytes(1536), '1.5 KiB');
  assert.equal(fmt.bytes(64 * 1024 * 1024), '64 MiB');
  assert.equal(fmt.percent(99.99), 99.9, 'never shows 100 before it is');
  assert.equal(fmt.percent(100), 100);
});
