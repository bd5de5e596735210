// Browser scenarios of the cache-sync client, demo and dashboard, in Debian's headless
// Chromium driven by playwright-core. Run by the end-to-end tests (tests/all/browser.rs),
// which start the gateway and the reference DB API on loopback first:
//
//   node scenarios.mjs <scenario> <gateway-url> <artifact-dir>
//
// with TOKEN_ALICE and ADMIN_TOKEN in the environment. Every wait is bounded; the script
// exits non-zero with the reason on the first failed check, and prints one `RESULT {json}`
// line with what the Rust side checks next (the DB API after a flush).

import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const [scenario, base, artifacts] = process.argv.slice(2);
const TOKEN = process.env.TOKEN_ALICE;
const ADMIN = process.env.ADMIN_TOKEN;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 20000;
mkdirSync(artifacts, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    timeout: TIMEOUT,
  });
}

async function status(page) {
  return (await page.locator('.cache-sync-status').textContent()) ?? '';
}

async function waitStatus(page, pattern, what) {
  try {
    await page.locator('.cache-sync-status').filter({ hasText: pattern }).waitFor({ timeout: TIMEOUT });
  } catch {
    throw new Error(`status never matched ${pattern} (${what}); it says: ${await status(page)}`);
  }
}

async function openDemo(context, profile = 'alice') {
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(base + '/');
  await page.fill('#token', TOKEN);
  await page.fill('#profile', profile);
  await page.click('button:has-text("Load profile")');
  await waitStatus(page, /^(Online|Synced)/, 'after loading');
  // The editor opens once the profile is loaded (typing earlier would be overwritten).
  await page.locator('#edit-fields:not([disabled])').waitFor();
  return page;
}

/** Saves with the keyboard: type into the name field, Enter submits the form. */
async function edit(page, name) {
  await page.locator('#name').focus();
  await page.keyboard.press('ControlOrMeta+a');
  await page.keyboard.type(name);
  await page.keyboard.press('Enter');
}

/** Saves online: waits for the gateway's answer to the PUT, then for `synced`. */
async function saveOnline(page, name) {
  const answered = page.waitForResponse((r) => r.request().method() === 'PUT' && r.url().includes('/v1/'), { timeout: TIMEOUT });
  await edit(page, name);
  const res = await answered;
  check(res.status() === 202, `saving ${name}: ${res.status()}`);
  await waitStatus(page, /^Synced/, `saved ${name}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function serverValue(context, key = 'alice') {
  const res = await context.request.get(`${base}/v1/profiles/${key}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  return { status: res.status(), etag: res.headers()['etag'], body: res.status() === 200 ? await res.json() : null };
}

const scenarios = {
  // Edit online, go offline, edit twice, reload offline, come back: the queue drains in order.
  async 'offline-queue'(browser) {
    const context = await browser.newContext();
    const page = await openDemo(context);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await saveOnline(page, 'Alice one');
    const puts = [];
    const afterReload = [];
    let reloaded = false;
    page.on('request', (r) => {
      if (r.method() === 'PUT') (reloaded ? afterReload : puts).push(r.postDataJSON().name);
    });
    await context.setOffline(true);
    await waitStatus(page, /^Offline/, 'going offline');
    await edit(page, 'Alice two');
    await waitStatus(page, /^Offline: 1 change/, 'one queued');
    await edit(page, 'Alice three');
    await waitStatus(page, /^Offline: 2 changes waiting/, 'two queued');
    await page.screenshot({ path: join(artifacts, 'demo-offline.png'), fullPage: true });
    // The page reloads offline (its service worker has the page); the queue is still there.
    await page.reload();
    await page.waitForSelector('.cache-sync-status');
    await page.locator('#edit-fields:not([disabled])').waitFor();
    await waitStatus(page, /^Offline: 2 changes waiting/, 'after an offline reload');
    await page.locator('#queue li').nth(1).waitFor();
    check((await page.locator('#queue li').count()) === 2, 'two writes listed after the reload');
    reloaded = true;
    await context.setOffline(false);
    await waitStatus(page, /^Synced/, 'back online');
    check(JSON.stringify(afterReload) === JSON.stringify(['Alice two', 'Alice three']),
      `sent in order after the reload: ${JSON.stringify(afterReload)}`);
    check(puts.length === 0, `nothing was sent while offline: ${JSON.stringify(puts)}`);
    const now = await serverValue(context);
    check(now.status === 200 && now.body.name === 'Alice three', `the gateway holds the last edit: ${JSON.stringify(now)}`);
    return { last: now.body };
  },

  // The connection is cut after the gateway answered: the retried write is applied once.
  async 'lost-response'(browser) {
    // Requests a service worker handles are not routed by the driver: the page's own only.
    const context = await browser.newContext({ serviceWorkers: 'block' });
    const page = await openDemo(context);
    let cut = 0;
    const answers = [];
    await page.route('**/v1/profiles/alice', async (route) => {
      if (route.request().method() === 'PUT' && cut === 0) {
        cut += 1;
        const res = await route.fetch();
        answers.push({ status: res.status(), replayed: res.headers()['idempotent-replayed'] ?? null, key: route.request().headers()['idempotency-key'] });
        await route.abort('connectionreset');
        return;
      }
      await route.continue();
    });
    page.on('response', async (r) => {
      if (r.request().method() === 'PUT') {
        answers.push({ status: r.status(), replayed: r.headers()['idempotent-replayed'] ?? null, key: r.request().headers()['idempotency-key'] });
      }
    });
    await edit(page, 'Alice once');
    for (let i = 0; i < 200 && answers.length < 2; i += 1) await sleep(100);
    await waitStatus(page, /^Synced/, 'after the retry');
    check(cut === 1, 'the first answer was cut');
    check(answers.length === 2, `two answers: ${JSON.stringify(answers)}`);
    check(answers[0].status === 202 && answers[0].replayed === null, `the first was buffered: ${JSON.stringify(answers)}`);
    check(answers[1].status === 202 && answers[1].replayed === 'true', `the retry was a replay: ${JSON.stringify(answers)}`);
    check(answers[0].key === answers[1].key, 'one Idempotency-Key for both');
    return { last: (await serverValue(context)).body };
  },

  // A second tab's change shows up live; a conflicting queued write becomes a conflict.
  async 'two-tabs'(browser) {
    const a = await browser.newContext();
    const b = await browser.newContext();
    const pageA = await openDemo(a);
    const pageB = await openDemo(b);
    check((await pageA.inputValue('#name')) === 'Seeded', 'tab A shows the stored profile');
    const started = Date.now();
    await saveOnline(pageB, 'Changed in B');
    await pageA.waitForFunction(() => document.getElementById('name').value === 'Changed in B', null, { timeout: 5000 });
    const liveMs = Date.now() - started;
    // Tab A edits offline, on the version it shows; tab B changes it again meanwhile.
    await a.setOffline(true);
    await waitStatus(pageA, /^Offline/, 'tab A offline');
    await edit(pageA, 'Edited in A offline');
    await waitStatus(pageA, /^Offline: 1 change/, 'tab A queued');
    await saveOnline(pageB, 'Changed in B again');
    await a.setOffline(false);
    await waitStatus(pageA, /^Conflict/, 'tab A conflict');
    await pageA.locator('#conflict').waitFor({ state: 'visible' });
    const mine = JSON.parse(await pageA.locator('#mine').textContent());
    const theirs = JSON.parse(await pageA.locator('#theirs').textContent());
    check(mine.name === 'Edited in A offline', `mine: ${JSON.stringify(mine)}`);
    check(theirs.name === 'Changed in B again', `theirs: ${JSON.stringify(theirs)}`);
    await pageA.screenshot({ path: join(artifacts, 'demo-conflict.png'), fullPage: true });
    await pageA.click('#keep-mine');
    await waitStatus(pageA, /^Synced/, 'conflict resolved');
    const now = await serverValue(a);
    check(now.body.name === 'Edited in A offline', `kept mine: ${JSON.stringify(now)}`);
    await pageB.waitForFunction(() => document.getElementById('name').value === 'Edited in A offline', null, { timeout: 5000 });
    // An edit in progress in tab B (typed, not saved) is kept when a change arrives live.
    await pageB.locator('#name').focus();
    await pageB.keyboard.press('ControlOrMeta+a');
    await pageB.keyboard.type('Draft in B');
    const put = await a.request.put(`${base}/v1/profiles/alice`, {
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      data: { name: 'Changed behind the draft' },
    });
    check(put.status() === 202, `the change behind the draft: ${put.status()}`);
    await pageB.locator('#remote-note').filter({ hasText: /Changed elsewhere/ }).waitFor({ timeout: 5000 });
    check((await pageB.inputValue('#name')) === 'Draft in B', `the draft was kept: ${await pageB.inputValue('#name')}`);
    return { last: (await serverValue(a)).body, live_ms: liveMs };
  },

  // After some traffic and flushes, every plot has points.
  async dashboard(browser) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const req = context.request;
    const auth = { Authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < 6; i += 1) {
      await req.get(`${base}/v1/profiles/alice`, { headers: auth });
      await req.get(`${base}/v1/profiles/absent-${i}`, { headers: auth });
      await req.put(`${base}/v1/profiles/alice`, { headers: { ...auth, 'Content-Type': 'application/json' }, data: { name: `n${i}` } });
      const flush = await req.post(`${base}/admin/flush`, { headers: { Authorization: `Bearer ${ADMIN}` } });
      check(flush.status() === 200, `flush ${flush.status()}`);
    }
    const history = await (await req.get(`${base}/admin/history`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json();
    const refused = await req.get(`${base}/admin/history`, { headers: auth });
    check(refused.status() === 401, `a user's token does not open the history: ${refused.status()}`);
    const page = await context.newPage();
    page.setDefaultTimeout(TIMEOUT);
    await page.goto(base + '/dashboard');
    await page.fill('#admin-token', ADMIN);
    await page.keyboard.press('Enter');
    await page.waitForSelector('body[data-loaded="true"]');
    const figures = await page.locator('figure.plot').count();
    check(figures === 7, `seven plots: ${figures}`);
    for (const fig of await page.locator('figure.plot').all()) {
      check((await fig.locator('canvas').count()) === 1, 'each plot has a canvas');
      check(Number(await fig.getAttribute('data-points')) >= 1, 'each plot has points');
    }
    const series = ['hit_rate', 'origin_fetches', 'origin_latency_ms', 'buffered_writes', 'writes', 'oldest_dirty_s',
      'flush_ok', 'delivered', 'dead_letters', 'errors'];
    for (const s of series) check(history[s].length >= 1 && history[s].some((v) => v !== null), `series ${s} has values`);
    check(history.hit_rate.some((v) => v > 0), 'some reads were hits');
    check(history.origin_fetches.some((v) => v > 0), 'some fetches');
    check(history.flush_ok.some((v) => v > 0) && history.delivered.some((v) => v > 0), 'flushes delivered');
    const text = await page.locator('main').textContent();
    check(!text.includes('n5') && !text.includes('alice'), 'the dashboard shows no keys or values');
    await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
    return { points: history.t.length };
  },

  // axe-core on both pages: no serious or critical violation.
  async accessibility(browser) {
    const context = await browser.newContext({ bypassCSP: true });
    const axe = require.resolve('axe-core/axe.min.js');
    const results = {};
    const page = await openDemo(context);
    await saveOnline(page, 'Accessible');
    await context.request.post(`${base}/admin/flush`, { headers: { Authorization: `Bearer ${ADMIN}` } });
    const dash = await context.newPage();
    dash.setDefaultTimeout(TIMEOUT);
    await dash.goto(base + '/dashboard');
    await dash.fill('#admin-token', ADMIN);
    await dash.click('button:has-text("Show")');
    await dash.waitForSelector('body[data-loaded="true"]');
    for (const [name, p] of [['demo', page], ['dashboard', dash]]) {
      await p.addScriptTag({ path: axe });
      const r = await p.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
      const bad = r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      results[name] = r.violations.map((v) => `${v.impact} ${v.id}`);
      check(bad.length === 0, `${name}: ${JSON.stringify(bad.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target) })))}`);
    }
    return results;
  },
};

const run = scenarios[scenario];
if (!run) {
  console.error(`unknown scenario ${scenario}; known: ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
const browser = await launch();
const guard = setTimeout(() => { console.error(`scenario ${scenario} took over 120 s`); process.exit(3); }, 120000);
try {
  const result = await run(browser);
  console.log('RESULT ' + JSON.stringify(result ?? {}));
} catch (e) {
  console.error(`scenario ${scenario}: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(guard);
  await browser.close();
}
