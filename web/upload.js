// upload.js -- the new-import form: a file by drag and drop or the picker,
// kind inferred from the extension (the user may change it), collection,
// mode, key column, delimiter, dry run; the new job shows at once.

import { $ } from './dom.js';
import * as api from './api.js';
import * as store from './store.js';
import * as fmt from './format.js';
import { toast } from './toasts.js';

let file = null;
let kindTouched = false;

export function kindFor(name) {
  const ext = (/\.([^.]+)$/.exec(name.toLowerCase()) || [])[1];
  if (ext === 'ndjson' || ext === 'jsonl') return 'ndjson';
  if (ext === 'json') return 'backup';
  return 'csv';
}

const stem = (name) => name.replace(/^.*[\\/]/, '').replace(/\.[^.]*$/, '');

function choose(f) {
  file = f;
  $('upload-error').textContent = '';
  $('file-chosen').textContent = f ? `${f.name} (${fmt.bytes(f.size)})` : '';
  $('collection').placeholder = f ? stem(f.name) || 'default' : 'the file name without extension';
  if (!f) return;
  if (!kindTouched) $('kind').value = kindFor(f.name);
  if (/\.tsv$/i.test(f.name) && !$('delimiter').value) $('delimiter').value = '\\t';
  syncKind();
}

function syncKind() {
  const kind = $('kind').value;
  $('delimiter-field').hidden = kind !== 'csv';
  $('key').disabled = kind === 'backup';
  $('key').placeholder = kind === 'backup' ? 'id (per element)' : 'id';
  $('collection').disabled = kind === 'backup';
}

function options() {
  const kind = $('kind').value;
  const delimiter = $('delimiter').value === '\\t' ? '\t' : $('delimiter').value;
  return {
    kind,
    mode: $('mode').value,
    collection: kind === 'backup' ? undefined : $('collection').value.trim() || undefined,
    key: kind === 'backup' ? undefined : $('key').value.trim() || undefined,
    delimiter: kind === 'csv' && delimiter ? delimiter : undefined,
    dry_run: $('dry-run').checked ? 'true' : undefined,
  };
}

async function submit(ev) {
  ev.preventDefault();
  const err = $('upload-error');
  if (!file) {
    err.textContent = 'Choose a file first.';
    $('file-input').focus();
    return;
  }
  if (file.size === 0) {
    err.textContent = `${file.name} is empty: there is nothing to import.`;
    return;
  }
  err.textContent = '';
  const button = $('submit');
  button.disabled = true;
  const progress = $('upload-progress');
  try {
    const job = await api.submitFile(file, options(), (sent, total) => {
      progress.textContent = total > api.SINGLE_UPLOAD_MAX
        ? `Uploading ${fmt.bytes(sent)} of ${fmt.bytes(total)}…` : 'Uploading…';
    });
    store.upsert(job);
    toast(`${job.file_name} submitted.`, 'success');
    $('upload-form').reset();
    kindTouched = false;
    choose(null);
    syncKind();
  } catch (e) {
    err.textContent = e.status === 0 ? 'The server cannot be reached; nothing was submitted. Try again when it is back.'
      : `Not submitted: ${e.message}`;
  } finally {
    button.disabled = false;
    progress.textContent = '';
  }
}

export function init() {
  const drop = $('drop');
  $('file-input').addEventListener('change', (ev) => choose(ev.target.files[0] || null));
  $('kind').addEventListener('change', () => { kindTouched = true; syncKind(); });
  for (const t of ['dragenter', 'dragover']) {
    drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  }
  for (const t of ['dragleave', 'drop']) drop.addEventListener(t, () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    const f = ev.dataTransfer && ev.dataTransfer.files[0];
    if (f) choose(f);
  });
  // A file dropped next to the zone must not replace the page.
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());
  $('upload-form').addEventListener('submit', submit);
  choose(null);
  syncKind();
}
