// cache-sync browser client: an offline-first write queue in IndexedDB in front of the
// cache-sync gateway, with live updates by long-poll. Dependency-free ES module.
//
// Why it is shaped this way:
// - Writes survive a reload or a closed tab: each is stored in IndexedDB before `put`,
//   `patch` or `delete` resolve, and removed only once the gateway answered for it.
// - Writes are sent one at a time, oldest first, so the gateway sees them in the order the
//   application made them.
// - Every write carries its own Idempotency-Key, made when it is queued and sent unchanged on
//   every retry: a retry after a lost response is answered with the first result and is not
//   applied twice.
// - A failed send (no network, 5xx, 429, 409 "still in progress") is retried with
//   exponential backoff and jitter; the browser's `online` event retries at once.
// - A write queued with `ifMatch` that the gateway refuses with 412 becomes a `conflict`
//   event carrying both versions (the queued one and the current one); the application
//   resolves it with `resolve()`.

/** @typedef {'online'|'offline'|'syncing'|'synced'|'conflict'|'error'} SyncState */

/**
 * @typedef {object} QueuedWrite
 * @property {number} [seq] queue position (IndexedDB key)
 * @property {string} ns
 * @property {string} key
 * @property {'PUT'|'PATCH'|'DELETE'} method
 * @property {unknown} [body] the value or merge patch
 * @property {string|null} ifMatch the ETag the write is based on, when conflicts matter
 * @property {string} idempotencyKey
 * @property {number} queuedAt
 */

/**
 * @typedef {object} Conflict
 * @property {number} id
 * @property {QueuedWrite} write the queued write the gateway refused
 * @property {{value: unknown, etag: string|null, exists: boolean}} current what the gateway holds now
 */

const DB_VERSION = 1;
const QUEUE = 'queue';
const CONFLICTS = 'conflicts';
/** Long-poll wait in seconds: the gateway's bound is 25 (below a 30 s request limit). */
const WAIT_SECONDS = 25;

/** @param {IDBRequest|IDBTransaction} r */
function done(r) {
  return new Promise((resolve, reject) => {
    if ('oncomplete' in r) {
      r.oncomplete = () => resolve(undefined);
      r.onabort = r.onerror = () => reject(r.error);
    } else {
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    }
  });
}

function newKey() {
  if (globalThis.crypto && 'randomUUID' in globalThis.crypto) return globalThis.crypto.randomUUID();
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class SyncClient extends EventTarget {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl] the gateway's origin ('' for the page's own)
   * @param {string|null} [options.authorization] the Authorization header to send
   * @param {string} [options.dbName] the IndexedDB database holding the queue
   * @param {number} [options.minBackoffMs]
   * @param {number} [options.maxBackoffMs]
   */
  constructor(options = {}) {
    super();
    this.baseUrl = options.baseUrl ?? '';
    this.authorization = options.authorization ?? null;
    this.dbName = options.dbName ?? 'cache-sync';
    this.minBackoffMs = options.minBackoffMs ?? 500;
    this.maxBackoffMs = options.maxBackoffMs ?? 30000;
    /** @type {SyncState} */
    this.state = typeof navigator !== 'undefined' && navigator.onLine === false ? 'offline' : 'online';
    this.pending = 0;
    this.conflicts = 0;
    this.failures = 0;
    this.lastError = null;
    this._draining = false;
    this._timer = null;
    this._db = null;
    this._elements = new Set();
    if (typeof window !== 'undefined') {
      window.addEventListener('online', () => { this.failures = 0; this.flush(); });
      window.addEventListener('offline', () => this._setState('offline'));
    }
  }

  /** Opens the queue and starts sending what an earlier page left in it. */
  async open() {
    if (!this._db) {
      const req = indexedDB.open(this.dbName, DB_VERSION);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains(QUEUE)) db.createObjectStore(QUEUE, { keyPath: 'seq', autoIncrement: true });
        if (!db.objectStoreNames.contains(CONFLICTS)) db.createObjectStore(CONFLICTS, { keyPath: 'id', autoIncrement: true });
      };
      this._db = await done(req);
    }
    await this._count();
    this.flush();
    return this;
  }

  /** @param {string} ns @param {string} key */
  url(ns, key) {
    return `${this.baseUrl}/v1/${encodeURIComponent(ns)}/${encodeURIComponent(key)}`;
  }

  _headers(extra = {}) {
    const h = { ...extra };
    if (this.authorization) h.Authorization = this.authorization;
    return h;
  }

  /**
   * Reads an item from the gateway, with the writes still queued for it applied on top
   * (what this client will make of it).
   * @param {string} ns @param {string} key
   * @returns {Promise<{value: unknown, etag: string|null, exists: boolean, pending: number}>}
   */
  async get(ns, key) {
    const current = await this._fetchCurrent(ns, key);
    const queued = (await this._all(QUEUE)).filter((w) => w.ns === ns && w.key === key);
    let { value, exists } = current;
    for (const w of queued) {
      if (w.method === 'DELETE') { value = undefined; exists = false; }
      else if (w.method === 'PUT') { value = w.body; exists = true; }
      else { value = mergePatch(value, w.body); exists = true; }
    }
    return { value, etag: current.etag, exists, pending: queued.length };
  }

  /** @param {string} ns @param {string} key @param {unknown} value @param {{ifMatch?: string|null}} [opts] */
  put(ns, key, value, opts = {}) { return this._enqueue(ns, key, 'PUT', value, opts); }
  /** @param {string} ns @param {string} key @param {unknown} patch @param {{ifMatch?: string|null}} [opts] */
  patch(ns, key, patch, opts = {}) { return this._enqueue(ns, key, 'PATCH', patch, opts); }
  /** @param {string} ns @param {string} key @param {{ifMatch?: string|null}} [opts] */
  delete(ns, key, opts = {}) { return this._enqueue(ns, key, 'DELETE', undefined, opts); }

  async _enqueue(ns, key, method, body, opts) {
    if (!this._db) await this.open();
    /** @type {QueuedWrite} */
    const write = { ns, key, method, ifMatch: opts.ifMatch ?? null, idempotencyKey: newKey(), queuedAt: Date.now() };
    if (body !== undefined) write.body = body;
    const tx = this._db.transaction(QUEUE, 'readwrite');
    write.seq = await done(tx.objectStore(QUEUE).add(write));
    await done(tx);
    await this._count();
    this.flush();
    return write;
  }

  /** Sends the queue now (also called on `online` and after each backoff). */
  flush() {
    if (this._timer) { clearTimeout(this._timer); this._timer = null; }
    this._drain();
  }

  async _drain() {
    if (this._draining || !this._db) return;
    // Tabs of one origin share the queue: one sends at a time (Web Locks, where the browser
    // has them; the Idempotency-Key keeps a write applied once either way).
    const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
    if (locks) {
      await locks.request(`cache-sync-drain:${this.dbName}`, { ifAvailable: true }, async (lock) => {
        if (lock) await this._drainHeld();
        else this._scheduleRetry();
      });
    } else {
      await this._drainHeld();
    }
  }

  async _drainHeld() {
    if (this._draining) return;
    this._draining = true;
    try {
      for (;;) {
        const next = await this._first();
        if (!next) break;
        if (typeof navigator !== 'undefined' && navigator.onLine === false) { this._setState('offline'); return; }
        this._setState('syncing');
        const outcome = await this._send(next);
        if (outcome === 'retry') { this._scheduleRetry(); return; }
        await this._remove(QUEUE, next.seq);
        if (typeof outcome === 'object') {
          await this._rebase(next, outcome.etag);
          // After the write left the queue, so listeners see the queue without it.
          this.dispatchEvent(new CustomEvent('sent', { detail: { write: next, ...outcome } }));
        }
        this.failures = 0;
        await this._count();
      }
      const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
      this._setState(this.conflicts > 0 ? 'conflict' : this.lastError ? 'error' : offline ? 'offline' : 'synced');
    } finally {
      this._draining = false;
    }
  }

  /**
   * Writes queued after `sent` on the same version it was based on were made on top of it:
   * they are now based on the version it made (`etag`), not refused as a conflict with it.
   * @param {QueuedWrite} sent @param {string|null} etag
   */
  async _rebase(sent, etag) {
    if (!sent.ifMatch || !etag) return;
    const tx = this._db.transaction(QUEUE, 'readwrite');
    const store = tx.objectStore(QUEUE);
    const later = await done(store.getAll());
    for (const w of later) {
      if (w.ns === sent.ns && w.key === sent.key && w.ifMatch === sent.ifMatch) {
        w.ifMatch = etag;
        store.put(w);
      }
    }
    await done(tx);
  }

  /** @param {QueuedWrite} w @returns {Promise<'done'|'retry'|{etag: string|null, replayed: boolean}>} */
  async _send(w) {
    const headers = this._headers({ 'Idempotency-Key': w.idempotencyKey });
    if (w.ifMatch) headers['If-Match'] = w.ifMatch;
    const init = { method: w.method, headers };
    if (w.method !== 'DELETE') {
      headers['Content-Type'] = w.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      init.body = JSON.stringify(w.body);
    }
    let res;
    try {
      res = await fetch(this.url(w.ns, w.key), init);
    } catch {
      return 'retry';
    }
    if (res.ok) {
      return { etag: res.headers.get('ETag'), replayed: res.headers.get('Idempotent-Replayed') === 'true' };
    }
    if (res.status === 412) {
      const current = await this._fetchCurrent(w.ns, w.key).catch(() => null);
      if (!current) return 'retry';
      const tx = this._db.transaction(CONFLICTS, 'readwrite');
      const id = await done(tx.objectStore(CONFLICTS).add({ write: w, current }));
      await done(tx);
      this.conflicts += 1;
      this.dispatchEvent(new CustomEvent('conflict', { detail: /** @type {Conflict} */ ({ id, write: w, current }) }));
      return 'done';
    }
    if (res.status === 409 || res.status === 408 || res.status === 429 || res.status >= 500) return 'retry';
    // Refused for good (400, 401, 403, 413, 415, 422): the write cannot succeed as it is.
    const error = await res.json().catch(() => ({ error: 'http_' + res.status, message: res.statusText }));
    this.lastError = { write: w, status: res.status, ...error };
    this.dispatchEvent(new CustomEvent('error', { detail: this.lastError }));
    return 'done';
  }

  _scheduleRetry() {
    this.failures += 1;
    const ceiling = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(this.failures - 1, 16));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    const offline = typeof navigator !== 'undefined' && navigator.onLine === false;
    this._setState(offline ? 'offline' : 'syncing');
    this._timer = setTimeout(() => { this._timer = null; this._drain(); }, delay);
  }

  /**
   * Resolves a conflict: `'theirs'` drops the queued write; `'mine'` (or a value) queues it
   * again (or the value) based on the current version's ETag.
   * @param {number} id @param {'mine'|'theirs'|{value: unknown}} choice
   */
  async resolve(id, choice) {
    const tx = this._db.transaction(CONFLICTS, 'readonly');
    /** @type {Conflict|undefined} */
    const c = await done(tx.objectStore(CONFLICTS).get(id));
    if (!c) return;
    await this._remove(CONFLICTS, id);
    this.conflicts = Math.max(0, this.conflicts - 1);
    if (choice !== 'theirs') {
      const value = typeof choice === 'object' ? choice.value : c.write.body;
      const method = typeof choice === 'object' ? 'PUT' : c.write.method;
      await this._enqueue(c.write.ns, c.write.key, method, value, { ifMatch: c.current.exists ? c.current.etag : null });
    } else {
      await this._count();
      this._setState(this.conflicts > 0 ? 'conflict' : this.pending > 0 ? 'syncing' : 'synced');
    }
  }

  /** The unresolved conflicts. @returns {Promise<Conflict[]>} */
  listConflicts() { return this._all(CONFLICTS); }

  /** The queued writes, oldest first. @returns {Promise<QueuedWrite[]>} */
  queued() { return this._all(QUEUE); }

  /**
   * Calls `callback({value, etag, exists})` whenever the item changes on the gateway, by
   * long-poll (`If-None-Match` and `?wait=25`). Returns a function that stops it.
   * @param {string} ns @param {string} key
   * @param {(v: {value: unknown, etag: string|null, exists: boolean}) => void} callback
   * @param {{etag?: string|null}} [opts] the version the caller already shows
   */
  subscribe(ns, key, callback, opts = {}) {
    let stopped = false;
    const ctrl = new AbortController();
    let etag = opts.etag ?? null;
    const loop = async () => {
      let failures = 0;
      while (!stopped) {
        try {
          const headers = this._headers(etag ? { 'If-None-Match': etag } : {});
          const res = await fetch(`${this.url(ns, key)}?wait=${WAIT_SECONDS}`, { headers, signal: ctrl.signal, cache: 'no-store' });
          failures = 0;
          if (res.status === 304) continue;
          const current = await readItem(res);
          if (current === null) throw new Error('read failed: ' + res.status);
          if (current.etag !== etag) { etag = current.etag; callback(current); }
          // An answer that did not wait (no ETag to wait on, or none kept): not a tight loop.
          else await sleep(1000);
          if (!etag) await sleep(1000);
        } catch {
          if (stopped) return;
          failures += 1;
          await sleep(Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** Math.min(failures, 6)));
        }
      }
    };
    loop();
    return () => { stopped = true; ctrl.abort(); };
  }

  /**
   * A ready-made status element: a `role="status"` live region whose text says the state
   * and the pending count in words (not colour alone); `data-state` carries the state for
   * styling.
   * @param {Document} [doc]
   */
  statusElement(doc = document) {
    const el = doc.createElement('p');
    el.setAttribute('role', 'status');
    el.setAttribute('aria-live', 'polite');
    el.className = 'cache-sync-status';
    this._elements.add(el);
    this._render(el);
    return el;
  }

  _render(el) {
    el.dataset.state = this.state;
    el.dataset.pending = String(this.pending);
    el.textContent = describe(this.state, this.pending, this.conflicts);
  }

  _setState(state) {
    this.state = state;
    for (const el of this._elements) this._render(el);
    this.dispatchEvent(new CustomEvent('status', { detail: { state, pending: this.pending, conflicts: this.conflicts } }));
  }

  /** Forgets the last refused write (the `error` state), once the application showed it. */
  clearError() {
    this.lastError = null;
    this._setState(this.conflicts > 0 ? 'conflict' : this.pending > 0 ? 'syncing' : 'synced');
  }

  async _fetchCurrent(ns, key) {
    const res = await fetch(this.url(ns, key), { headers: this._headers(), cache: 'no-store' });
    const item = await readItem(res);
    if (item === null) throw new Error(`GET ${ns}/${key}: ${res.status}`);
    return item;
  }

  async _first() {
    const tx = this._db.transaction(QUEUE, 'readonly');
    const cursor = await done(tx.objectStore(QUEUE).openCursor());
    return cursor ? cursor.value : null;
  }

  async _all(store) {
    if (!this._db) await this.open();
    const tx = this._db.transaction(store, 'readonly');
    return done(tx.objectStore(store).getAll());
  }

  async _remove(store, id) {
    const tx = this._db.transaction(store, 'readwrite');
    tx.objectStore(store).delete(id);
    await done(tx);
  }

  async _count() {
    const tx = this._db.transaction([QUEUE, CONFLICTS], 'readonly');
    this.pending = await done(tx.objectStore(QUEUE).count());
    this.conflicts = await done(tx.objectStore(CONFLICTS).count());
    this._setState(this.state);
  }
}

/** @param {Response} res */
async function readItem(res) {
  if (res.status === 404) return { value: undefined, etag: null, exists: false };
  if (!res.ok) return null;
  return { value: await res.json(), etag: res.headers.get('ETag'), exists: true };
}

/** RFC 7386 merge patch. */
export function mergePatch(target, patch) {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** The status in words. @param {SyncState} state @param {number} pending @param {number} conflicts */
export function describe(state, pending, conflicts = 0) {
  const n = (k, one, many) => `${k} ${k === 1 ? one : many}`;
  switch (state) {
    case 'offline': return `Offline: ${n(pending, 'change', 'changes')} waiting to sync`;
    case 'syncing': return `Syncing: ${n(pending, 'change', 'changes')} pending`;
    case 'synced': return 'Synced: all changes saved';
    case 'conflict': return `Conflict: ${n(conflicts, 'change needs', 'changes need')} your decision`;
    case 'error': return `Error: a change was refused (${pending} pending)`;
    default: return pending ? `Online: ${n(pending, 'change', 'changes')} pending` : 'Online';
  }
}
