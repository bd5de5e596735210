// The demo's service worker: the page and its assets from the network when it answers, from
// the cache when it does not, so a reload works offline. Item and admin requests are never
// cached here: the client's queue is what makes writes work offline.
const CACHE = 'cache-sync-shell-v1';
const SHELL = ['/', '/assets/app.css', '/assets/demo.js', '/assets/cache-sync.js'];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(self.clients.claim());
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !SHELL.includes(url.pathname)) return;
  event.respondWith(
    fetch(event.request)
      .then((res) => {
        const copy = res.clone();
        caches.open(CACHE).then((c) => c.put(event.request, copy));
        return res;
      })
      .catch(() => caches.match(event.request)),
  );
});
