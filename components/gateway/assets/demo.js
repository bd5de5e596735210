// The demo page: a profile editor on the cache-sync client. Edit, watch the sync status, go
// offline, come back, resolve a conflict. Everything the page knows of sync comes from the
// client's events; the page decides only what to show.
import { SyncClient } from '/assets/cache-sync.js';

const NS = 'profiles';
const $ = (id) => document.getElementById(id);

/** @type {SyncClient|null} */
let client = null;
let key = '';
/** The version the editor shows, sent as If-Match when the box is ticked. */
let etag = null;
let stopWatching = null;
/** The conflict on screen. */
let shown = null;
/** The fields as last loaded or saved: anything else in the editor is an edit in progress. */
let baseline = '';

if ('serviceWorker' in navigator) {
  // The page and its assets, so a reload works offline; item requests always go out.
  navigator.serviceWorker.register('/sw.js').catch(() => {});
}

function fields() {
  return { name: $('name').value, bio: $('bio').value };
}

function fill(value) {
  const v = value && typeof value === 'object' ? value : {};
  $('name').value = typeof v.name === 'string' ? v.name : '';
  $('bio').value = typeof v.bio === 'string' ? v.bio : '';
  baseline = JSON.stringify(fields());
}

async function renderQueue() {
  if (!client) return;
  const items = (await client.queued()).map((w) => {
    const li = document.createElement('li');
    const what = w.body && typeof w.body === 'object' ? ` name “${w.body.name ?? ''}”` : '';
    li.textContent = `${w.method} ${w.ns}/${w.key}${what}, queued ${new Date(w.queuedAt).toLocaleTimeString()}`;
    return li;
  });
  // Replaced at once: renders overlap (every status event asks for one).
  $('queue').replaceChildren(...items);
}

async function showConflicts() {
  if (!client) return;
  const [c] = await client.listConflicts();
  shown = c ?? null;
  $('conflict').hidden = !c;
  if (c) {
    $('mine').textContent = JSON.stringify(c.write.body, null, 2);
    $('theirs').textContent = c.current.exists ? JSON.stringify(c.current.value, null, 2) : '(deleted)';
  }
}

async function start() {
  $('edit-fields').disabled = true;
  const token = $('token').value.trim();
  key = $('profile').value.trim() || 'alice';
  sessionStorage.setItem('demo.token', token);
  sessionStorage.setItem('demo.profile', key);
  if (stopWatching) stopWatching();
  if (!client) {
    client = new SyncClient({ authorization: token ? `Bearer ${token}` : null });
    $('status-slot').replaceChildren(client.statusElement());
    client.addEventListener('status', () => { renderQueue(); showConflicts(); });
    client.addEventListener('conflict', () => showConflicts());
    client.addEventListener('sent', async (e) => {
      const { write, etag: sent } = /** @type {CustomEvent} */ (e).detail;
      if (write.key === key && (await client.queued()).every((w) => w.key !== key)) etag = sent;
    });
    client.addEventListener('error', (e) => {
      const d = /** @type {CustomEvent} */ (e).detail;
      $('remote-note').hidden = false;
      $('remote-note').textContent = `The gateway refused a change (${d.status} ${d.error}): ${d.message}`;
    });
    await client.open();
  } else {
    client.authorization = token ? `Bearer ${token}` : null;
  }
  try {
    const item = await client.get(NS, key);
    etag = item.etag;
    fill(item.value);
  } catch {
    // Offline: show what the queue will make of it.
    const mine = (await client.queued()).filter((w) => w.key === key && w.method === 'PUT').pop();
    fill(mine ? mine.body : JSON.parse(sessionStorage.getItem('demo.last') || 'null'));
  }
  $('edit-fields').disabled = false;
  stopWatching = client.subscribe(NS, key, async (current) => {
    const pending = (await client.queued()).some((w) => w.key === key);
    if (pending) return;
    const before = JSON.stringify(fields());
    if (before !== baseline) {
      // An edit in progress is never overwritten; saving it with the box ticked surfaces the
      // conflict, since the editor keeps the version the edit started from.
      $('remote-note').hidden = false;
      $('remote-note').textContent = `Changed elsewhere at ${new Date().toLocaleTimeString()}; your unsaved edit is kept.`;
      return;
    }
    etag = current.etag;
    fill(current.value);
    sessionStorage.setItem('demo.last', JSON.stringify(current.value ?? null));
    if (JSON.stringify(fields()) !== before) {
      $('remote-note').hidden = false;
      $('remote-note').textContent = `Updated from elsewhere at ${new Date().toLocaleTimeString()}.`;
    }
  }, { etag });
  await renderQueue();
  await showConflicts();
}

$('who').addEventListener('submit', (e) => { e.preventDefault(); start(); });

$('edit').addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!client) await start();
  const value = fields();
  baseline = JSON.stringify(value);
  sessionStorage.setItem('demo.last', JSON.stringify(value));
  await client.put(NS, key, value, { ifMatch: $('check').checked ? etag : null });
  await renderQueue();
});

$('keep-mine').addEventListener('click', async () => {
  if (!shown) return;
  await client.resolve(shown.id, 'mine');
  fill(shown.write.body);
  await showConflicts();
});

$('take-theirs').addEventListener('click', async () => {
  if (!shown) return;
  const c = shown;
  await client.resolve(c.id, 'theirs');
  etag = c.current.etag;
  fill(c.current.value);
  await showConflicts();
});

// A reload picks up where the tab was: same caller, same profile, the queue from IndexedDB.
const savedToken = sessionStorage.getItem('demo.token');
if (savedToken !== null) {
  $('token').value = savedToken;
  $('profile').value = sessionStorage.getItem('demo.profile') || 'alice';
  start();
}
