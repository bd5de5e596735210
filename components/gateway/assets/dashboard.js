// The dashboard: the gateway's per-minute history (GET /admin/history, admin token) as
// uPlot charts. It shows counts, rates and ages; no keys and no values.
const $ = (id) => document.getElementById(id);

/** One chart per series group: [title, [[series key, label, colour]], unit]. */
const PLOTS = [
  ['Hit rate', [['hit_rate', 'hit rate (%)', '#137333']], '%'],
  ['Origin fetches', [['origin_fetches', 'fetches per minute', '#0b57d0']], ''],
  ['Origin latency', [['origin_latency_ms', 'mean fetch (ms)', '#8a5300']], 'ms'],
  ['Buffered writes', [['buffered_writes', 'waiting', '#0b57d0'], ['writes', 'accepted per minute', '#5f6368']], ''],
  ['Oldest dirty age', [['oldest_dirty_s', 'oldest waiting write (s)', '#b3261e']], 's'],
  ['Flush outcomes', [['flush_ok', 'runs delivered', '#137333'], ['flush_failed', 'runs failed', '#b3261e'], ['delivered', 'items applied', '#0b57d0']], ''],
  ['Dead letters', [['dead_letters', 'dead letters', '#b3261e'], ['errors', 'error replies per minute', '#5f6368']], ''],
];

async function load(token) {
  const res = await fetch('/admin/history', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(`${res.status} ${body.error ?? ''}: ${body.message ?? res.statusText}`);
  }
  return res.json();
}

function draw(history) {
  const box = $('plots');
  box.replaceChildren();
  const now = Math.floor(Date.now() / 1000);
  for (const [title, series, unit] of PLOTS) {
    const fig = document.createElement('figure');
    fig.className = 'plot';
    const id = `plot-${series[0][0]}`;
    fig.id = id;
    const cap = document.createElement('figcaption');
    const h = document.createElement('h2');
    h.textContent = title;
    cap.append(h);
    const last = series.map(([k, label]) => {
      const v = history[k].at(-1);
      return `${label}: ${v === null || v === undefined ? 'no data' : Math.round(v * 10) / 10}${unit && v != null ? ' ' + unit : ''}`;
    });
    const summary = document.createElement('p');
    summary.textContent = `Last minute — ${last.join('; ')}. ${history.t.length} points.`;
    cap.append(summary);
    fig.append(cap);
    box.append(fig);
    const data = [history.t, ...series.map(([k]) => history[k].map((v) => (v === null ? null : v)))];
    const opts = {
      width: Math.max(280, fig.clientWidth - 8),
      height: 200,
      // Always the last hour, however few points there are yet.
      scales: { x: { time: true, range: () => [now - 3600, now + 60] } },
      series: [{}, ...series.map(([, label, stroke]) => ({ label, stroke, width: 2, points: { show: true, size: 6 } }))],
      axes: [{}, { label: unit || undefined }],
    };
    const chart = new window.uPlot(opts, data, fig);
    chart.root.setAttribute('aria-hidden', 'true');
    fig.dataset.points = String(history.t.length);
  }
}

async function show() {
  const token = $('admin-token').value.trim();
  sessionStorage.setItem('dashboard.token', token);
  $('dash-status').textContent = 'Loading…';
  try {
    const history = await load(token);
    draw(history);
    $('dash-status').textContent = history.t.length
      ? `Showing ${history.t.length} minutes, updated ${new Date().toLocaleTimeString()}.`
      : 'No history yet: it is recorded by each flush run.';
    document.body.dataset.loaded = 'true';
  } catch (e) {
    $('dash-status').textContent = `Could not load the history: ${e.message}`;
  }
}

$('login').addEventListener('submit', (e) => { e.preventDefault(); show(); });
const saved = sessionStorage.getItem('dashboard.token');
if (saved) { $('admin-token').value = saved; show(); }
setInterval(() => { if ($('admin-token').value) show(); }, 60000);
