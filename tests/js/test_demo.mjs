/*
 * The web demo (web-demo/, docs/web-demo.md) end to end in headless Chromium:
 * a real Herald serving examples/demo and web-demo/, the bundled worker
 * (web-demo/worker.py) pushing progress and reels over HTTP with the admin
 * key, and pages driven by Playwright.
 *
 *   (a) dashboard: after "Start a job" (signed in), that job's bar goes from
 *       0 to 100 while the worker pushes progress, read from the DOM without
 *       reloading; the status ends Completed;
 *   (d) a retryable failure shows its type and a Retry button, which re-queues
 *       the job (and the worker then finishes it); a failure that is not
 *       retryable has no button;
 *   (b) feed: Alice creates a feed, the worker's reels appear live, she
 *       scrolls to reel N, the place is saved (feeds:updateProgress, read back
 *       over HTTP), and after a reload the page resumes at reel N;
 *   (c) Bob does not see Alice's feeds, and opening her feed's address shows
 *       an error state, not her reels (and the API refuses him too).
 *
 * Every page must load only from Herald (no CDN) and raise no script error.
 * Screenshots go to demo-*.png in screenshotDir() (lib.mjs: the build folder;
 * scripts/screenshots points it at docs/screenshots).
 *
 * Run as: node test_demo.mjs <herald> <source root>
 * Needs playwright-core (npm ci in tests/js) and /usr/bin/chromium; exits 77
 * (skipped) without them.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checker, freePort, importOrSkip, startHerald, stopProcess, launchChromium, watchedPage, screenshotDir } from './lib.mjs';

const [{ chromium }] = await importOrSkip(['playwright-core'], { chromium: true });

const [herald, root] = process.argv.slice(2);
if (!herald || !root) {
  console.log('usage: node test_demo.mjs <herald> <source root>');
  process.exit(2);
}
const APP = join(root, 'examples', 'demo');
const STATIC = join(root, 'web-demo');
const SHOTS = screenshotDir(herald);
const { mintDemoToken } = await import(join(STATIC, 'demo-auth.js'));

const { check, failures, passed } = checker();

/* Waits for pred() (sync or async) to be truthy; the timeout is only a guard. */
async function until(pred, what, timeoutMs = 30000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) {
      check(false, `timed out waiting for ${what}`);
      return null;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'herald-demo-'));
const data = join(dir, 'data');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let server = null;
let worker = null;
let serverOut = '';
let workerOut = '';
let browser = null;

/* serverOut keeps the output of every start, for the sanitizer scan at the end. */
const startServer = () =>
  startHerald(herald, ['--data', data, '--app', APP, 'serve', '--port', String(port), '--static', STATIC], {
    onOutput: (d) => { serverOut += d; },
  });

async function api(kind, path, args, token) {
  const res = await fetch(`${base}/api/${kind}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ path, args }),
  });
  return res.json();
}

const newPage = (context, name) => watchedPage(context, name, base, check);

async function signIn(page, who) {
  await page.click('#sign-in');
  await page.click(`.signin-menu button[data-user="${who}"]`);
  await page.waitForSelector('.who-name', { timeout: 15000 });
}

/* The dashboard card of the job with this title (a Locator). */
const card = (page, title) => page.locator('li.job', { has: page.locator('.job-title', { hasText: title }) });

async function dashboardTests(context) {
  const page = await newPage(context, 'dashboard');
  await page.goto(`${base}/`);
  await page.waitForSelector('li.job', { timeout: 15000 });
  check(await page.locator('li.job').count() >= 8, 'the dashboard lists the seed videos');
  check((await page.textContent('#start-hint')).includes('Sign in'), 'signed out, the dashboard says to sign in to start jobs');
  await signIn(page, 'alice');
  check((await page.textContent('.who-name')) === 'Alice', 'the header shows the signed-in user');
  await until(async () => (await page.getAttribute('.conn', 'data-state')) === 'open', 'the connection status to say Live');

  /* Every value the progress bars take, as the page renders them. */
  await page.evaluate(() => {
    window.__notReloaded = true;
    window.__bars = {};
    const note = (bar) => {
      const li = bar.closest('li.job');
      const title = li && li.querySelector('.job-title').textContent;
      if (!title) return;
      const list = (window.__bars[title] ||= []);
      const v = Number(bar.getAttribute('aria-valuenow'));
      if (list[list.length - 1] !== v) list.push(v);
    };
    new MutationObserver((muts) => {
      for (const m of muts) {
        if (m.type === 'attributes' && m.target.matches('.progress')) note(m.target);
        for (const n of m.addedNodes) if (n.querySelectorAll) n.querySelectorAll('.progress[aria-valuenow]').forEach(note);
      }
    }).observe(document.getElementById('jobs'), { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
  });

  /* (a) a job's bar from 0 to 100. Two failing jobs start alongside it, for (d). */
  const title = `E2E progress ${Date.now() % 100000}`;
  const failTitle = 'E2E upload that will fail once';
  const brokenTitle = 'E2E broken upload';
  for (const t of [title, failTitle, brokenTitle]) {
    await page.fill('#job-title', t);
    await page.click('#start-button');
    await until(async () => (await card(page, t).count()) === 1, `the card of "${t}"`, 15000);
  }
  const job = card(page, title);
  const polled = []; /* what the test itself reads from the DOM, repeatedly */
  let shotTaken = false;
  await until(async () => {
    const s = await job.evaluate((li) => ({
      status: li.dataset.status,
      value: Number(li.querySelector('.progress').getAttribute('aria-valuenow')),
      width: li.querySelector('.progress-fill').style.width,
      stage: li.querySelector('.job-stage').textContent,
    }));
    if (!polled.length || polled[polled.length - 1].value !== s.value || polled[polled.length - 1].status !== s.status) polled.push(s);
    if (!shotTaken && s.value >= 40 && s.value < 90) {
      shotTaken = true;
      await page.screenshot({ path: join(SHOTS, 'demo-dashboard.png') });
    }
    return s.status === 'Completed';
  }, `"${title}" to complete`, 60000, 50);
  const seen = await page.evaluate((t) => window.__bars[t] || [], title);
  console.log(`progress seen by the page: ${seen.join(' ')}`);
  console.log(`progress polled: ${polled.map((p) => `${p.value}(${p.status})`).join(' ')}`);
  check(seen[0] === 0, `the new job's bar starts at 0 (saw ${seen[0]})`);
  check(seen.every((v, i) => i === 0 || v >= seen[i - 1]), `the bar only moves forward: ${seen.join(' ')}`);
  check(seen.filter((v) => v > 0 && v < 100).length >= 5, `the bar took several values between 0 and 100: ${seen.join(' ')}`);
  check(seen[seen.length - 1] === 100, 'the bar reaches 100');
  check(polled.some((p) => p.value > 0 && p.value < 100 && /^\d+(\.\d+)?%$/.test(p.width) && parseFloat(p.width) === p.value),
    'while it runs, the bar\'s width follows its value');
  check(polled.some((p) => p.status !== 'Queued' && p.status !== 'Completed'), 'the card showed a processing stage on the way');
  check((await job.locator('.badge').textContent()) === 'Completed', 'the card says Completed');
  check((await job.locator('.job-pct').textContent()) === '100%', 'the card says 100%');
  check(await page.evaluate(() => window.__notReloaded === true), 'the dashboard was never reloaded');

  /* (d) retryable and final failures. */
  const failing = card(page, failTitle);
  await until(async () => (await failing.getAttribute('data-status')) === 'Failed', `"${failTitle}" to fail`, 60000);
  check((await failing.locator('.error-type').textContent()) === 'external_service_error', 'the failed job shows its error type');
  check((await failing.locator('.error-message').textContent()).length > 0, 'the failed job shows its error message');
  const retryButton = failing.locator('button[data-retry]');
  check(await retryButton.isVisible(), 'a retryable failure has a Retry button');
  const broken = card(page, brokenTitle);
  await until(async () => (await broken.getAttribute('data-status')) === 'Failed', `"${brokenTitle}" to fail`, 60000);
  check((await broken.locator('.error-type').textContent()) === 'invalid_video_url', 'the final failure shows its error type');
  check(await broken.locator('button[data-retry]').count() === 0, 'a failure that is not retryable has no Retry button');
  check(await broken.locator('.not-retryable').isVisible(), 'a failure that is not retryable says so');
  check(await card(page, 'Dev stream: building a database').locator('button[data-retry]').count() === 1,
    'the seed\'s retryable failure has a Retry button');
  await retryButton.click();
  await until(async () => (await failing.getAttribute('data-status')) !== 'Failed', 'the retried job to leave Failed', 15000);
  check(await failing.locator('button[data-retry]').count() === 0, 'the retried job has no Retry button any more');
  await until(async () => (await failing.getAttribute('data-status')) === 'Completed', 'the retried job to complete', 60000);
  check((await failing.locator('.job-meta').textContent()).includes('1 retry'), 'the retried job counts its retry');
  const seed = await api('query', 'videos:list', { status: 'Completed' });
  check(seed.value.some((v) => v.title === failTitle && v.retryCount === 1), 'the server has the retried job completed, retryCount 1');
  if (!shotTaken) await page.screenshot({ path: join(SHOTS, 'demo-dashboard.png') });
  await page.close();
}

async function feedTests(alice, bob, adminKey) {
  /* (b) Alice's feed: reels arrive live, the place is saved, a reload resumes there. */
  const page = await newPage(alice, 'alice feed');
  await page.goto(`${base}/feed.html`);
  await page.waitForSelector('.who-name', { timeout: 15000 }); /* signed in from the dashboard */
  await until(async () => (await page.getAttribute('#feeds-state', 'data-kind')) === 'empty' || (await page.locator('.feed-card').count()) > 0,
    'Alice\'s feed list', 15000);
  const prompt = `E2E street food ${Date.now() % 100000}`;
  await page.fill('#feed-prompt', prompt);
  /* The worker waits (SIGSTOP) until the new feed's page is open, so that every reel
   * arrives while the page watches, however slowly this machine renders it. */
  worker.kill('SIGSTOP');
  let counts = [];
  try {
    await page.click('#create-button');
    await page.waitForURL(/feed\.html\?feed=/, { timeout: 15000 });
    await page.evaluate(() => { window.__notReloaded = true; });
    counts = [await page.locator('.reel').count()];
  } finally {
    worker.kill('SIGCONT');
  }
  const feedId = new URL(page.url()).searchParams.get('feed');
  check(Boolean(feedId), 'creating a feed opens it');
  await until(async () => {
    const n = await page.locator('.reel').count();
    if (counts[counts.length - 1] !== n) counts.push(n);
    return n >= 4;
  }, 'the worker\'s reels to appear', 30000, 50);
  check(counts.length >= 2 && counts[counts.length - 1] > counts[0], `reels appeared live, without a reload: ${counts.join(' ')}`);
  await until(async () => (await page.locator('.reel[data-status="ready"]').count()) >= 1, 'a reel to turn ready', 20000);
  check(await page.evaluate(() => window.__notReloaded === true), 'the feed page was never reloaded while reels arrived');

  const N = 7;
  /* Scrolling down loads the next pages; reel N arrives as the worker adds it. */
  const reelN = await until(async () => {
    const found = await page.locator(`.reel[data-position="${N}"]`).count();
    if (found) return true;
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    return false;
  }, `reel ${N} to load`, 40000, 150);
  check(Boolean(reelN), `scrolling down loaded reel ${N} (page by page)`);
  check(await page.evaluate(() => document.querySelectorAll('.reel').length) > 5, 'more than one page of reels is shown');
  const reelId = await page.getAttribute(`.reel[data-position="${N}"]`, 'data-reel-id');
  await page.evaluate((n) => document.querySelector(`.reel[data-position="${n}"]`).scrollIntoView({ block: 'center' }), N);
  await until(async () => (await page.getAttribute(`.reel[data-position="${N}"]`, 'aria-current')) === 'true', `reel ${N} to be marked current`, 10000);
  await until(async () => (await page.getAttribute('#saved', 'data-saved-index')) === String(N), 'the page to show the place saved', 10000);
  const saved = await until(async () => {
    const r = await api('query', 'feeds:getById', { feedId }, adminKey);
    return r.value && r.value.lastSeenIndex === N ? r.value : null;
  }, 'feeds:updateProgress to be saved', 10000);
  check(saved && saved.lastSeenReelId === reelId, `the server has lastSeenReelId of reel ${N}`);

  await page.reload();
  await until(async () => (await page.getAttribute(`.reel[data-position="${N}"]`, 'aria-current')) === 'true', `the reloaded page to resume at reel ${N}`, 15000);
  const inView = await page.evaluate((n) => {
    const r = document.querySelector(`.reel[data-position="${n}"]`).getBoundingClientRect();
    const mid = (r.top + r.bottom) / 2;
    return mid > 0 && mid < innerHeight;
  }, N);
  check(inView, `after the reload, reel ${N} is in view`);
  check(await page.locator('.reel[aria-current="true"]').count() === 1, 'exactly one reel is current');
  check(await page.evaluate(() => window.scrollY) > 0, 'the reloaded page scrolled down to the saved reel');
  /* The resume itself must not move the saved place (to reel 0, say). */
  await page.waitForTimeout(1500);
  const after = await api('query', 'feeds:getById', { feedId }, adminKey);
  check(after.value.lastSeenIndex === N, `the saved place is still reel ${N} after the reload (got ${after.value.lastSeenIndex})`);
  await page.screenshot({ path: join(SHOTS, 'demo-feed.png') });

  /* (c) Bob sees only his own feeds, and not Alice's even by address. */
  const bobPage = await newPage(bob, 'bob feed');
  await bobPage.goto(`${base}/feed.html`);
  await bobPage.waitForSelector('#feeds-state[data-kind="signed-out"]', { timeout: 15000 });
  check(await bobPage.locator('.feed-card').count() === 0, 'signed out, no feeds are listed');
  await bobPage.click('#feeds-state button[data-signin-as="bob"]');
  await bobPage.waitForSelector('.who-name', { timeout: 15000 });
  check((await bobPage.textContent('.who-name')) === 'Bob', 'Bob is signed in');
  await until(async () => (await bobPage.getAttribute('#feeds-state', 'data-kind')) === 'empty', 'Bob\'s empty feed list', 15000);
  check(!(await bobPage.content()).includes(prompt), 'Bob\'s feed list does not show Alice\'s feed');
  const bobPrompt = `E2E bob's feed ${Date.now() % 100000}`;
  await bobPage.fill('#feed-prompt', bobPrompt);
  await bobPage.click('#create-button');
  await bobPage.waitForURL(/feed\.html\?feed=/, { timeout: 15000 });
  const bobFeedId = new URL(bobPage.url()).searchParams.get('feed');
  await bobPage.goto(`${base}/feed.html`);
  await bobPage.waitForSelector('.feed-card', { timeout: 15000 });
  const bobFeeds = await bobPage.$$eval('.feed-card', (as) => as.map((a) => a.dataset.feedId));
  check(bobFeeds.length === 1 && bobFeeds[0] === bobFeedId, `Bob lists exactly his own feed (got ${bobFeeds.join(', ')})`);
  await bobPage.goto(`${base}/feed.html?feed=${encodeURIComponent(feedId)}`);
  await bobPage.waitForSelector('#feed-state[data-kind="error"]', { timeout: 15000 });
  check((await bobPage.textContent('#feed-state')).includes('another user'), 'Alice\'s feed opened by Bob shows "belongs to another user"');
  await bobPage.waitForTimeout(500);
  check(await bobPage.locator('.reel').count() === 0, 'Bob sees none of Alice\'s reels');
  check(!(await bobPage.content()).includes(prompt), 'Bob\'s page does not show Alice\'s prompt');

  const { token: bobToken } = await mintDemoToken('Bob');
  const r1 = await api('query', 'feeds:getById', { feedId }, bobToken);
  check(r1.status === 'error' && r1.errorData && r1.errorData.code === 'FORBIDDEN', `the API refuses Alice's feed to Bob: ${JSON.stringify(r1)}`);
  const r2 = await api('query', 'reels:listForFeed', { feedId, paginationOpts: { numItems: 5, cursor: null } }, bobToken);
  check(r2.status === 'error' && r2.errorData && r2.errorData.code === 'FORBIDDEN', 'the API refuses Alice\'s reels to Bob');

  /* Alice's list has her feed and not Bob's. */
  await page.goto(`${base}/feed.html`);
  await page.waitForSelector('.feed-card', { timeout: 15000 });
  const aliceFeeds = await page.$$eval('.feed-card', (as) => as.map((a) => a.dataset.feedId));
  check(aliceFeeds.includes(feedId) && !aliceFeeds.includes(bobFeedId), 'Alice lists her feed and not Bob\'s');
  check((await page.locator(`.feed-card[data-feed-id="${feedId}"]`).textContent()).includes(`#${N + 1}`), 'Alice\'s feed card says where it resumes');
  await page.close();
  await bobPage.close();
  return feedId;
}

async function phoneShots(feedId) {
  /* Phone width, signed in as Alice: the same pages must fit 390 px. */
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await phone.addInitScript(() => localStorage.setItem('herald-demo.user', 'Alice'));
  const page = await newPage(phone, 'phone');
  await page.goto(`${base}/`);
  await page.waitForSelector('li.job', { timeout: 15000 });
  await page.waitForSelector('.who-name', { timeout: 15000 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(overflow <= 1, `the dashboard fits a phone's width (overflows by ${overflow}px)`);
  await page.screenshot({ path: join(SHOTS, 'demo-dashboard-phone.png') });
  await page.goto(`${base}/feed.html?feed=${encodeURIComponent(feedId)}`);
  await page.waitForSelector('.reel[aria-current="true"]', { timeout: 15000 });
  const feedOverflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  check(feedOverflow <= 1, `the feed fits a phone's width (overflows by ${feedOverflow}px)`);
  await page.screenshot({ path: join(SHOTS, 'demo-feed-phone.png') });
  await phone.close();
}

async function restartTest(context) {
  /* (e) Herald restarts: the page reconnects by itself, the worker carries on. */
  const page = await newPage(context, 'restart');
  await page.goto(`${base}/`);
  await page.waitForSelector('.who-name', { timeout: 15000 });
  await until(async () => (await page.getAttribute('.conn', 'data-state')) === 'open', 'the dashboard to connect', 15000);
  await page.evaluate(() => { window.__notReloaded = true; });
  const code = await stopProcess(server);
  check(code === 0, `the server stops cleanly for the restart (exit ${code})`);
  server = null;
  await until(async () => (await page.getAttribute('.conn', 'data-state')) === 'reconnecting', 'the page to say it is reconnecting', 15000);
  server = (await startServer()).proc;
  await until(async () => (await page.getAttribute('.conn', 'data-state')) === 'open', 'the page to reconnect after the restart', 30000);
  const title = 'E2E after the restart';
  await page.fill('#job-title', title);
  await page.click('#start-button');
  await until(async () => (await card(page, title).getAttribute('data-status').catch(() => null)) === 'Completed',
    'the worker to finish a job after the restart', 60000);
  check(await page.evaluate(() => window.__notReloaded === true), 'the dashboard followed the restart without a reload');
  await page.close();
}

async function main() {
  const imp = spawnSync(herald, ['--data', data, '--app', APP, 'import', '--table', 'videos', join(APP, 'seed', 'videos.jsonl')], { encoding: 'utf8' });
  if (!check(imp.status === 0, `seed import: ${imp.stdout}${imp.stderr}`)) return;
  const started = await startServer();
  server = started.proc;
  check(Boolean(started.key), 'the server wrote an admin key to its file');
  check(!serverOut.includes(started.key), 'the server never prints the admin key');
  // The worker reads the key where the server wrote it (mode 0600), as scripts/run does.
  const keyFile = join(data, 'admin.key');
  mkdirSync(SHOTS, { recursive: true });

  const home = await fetch(`${base}/`);
  check(home.status === 200 && (await home.text()).includes('dashboard.js'), 'Herald serves the dashboard at /');

  worker = spawn('/usr/bin/python3', [join(STATIC, 'worker.py'), '--url', base, '--key-file', keyFile,
    '--step-seconds', '0.25', '--concurrency', '8', '--seed', '7']);
  worker.stdout.on('data', (d) => { workerOut += d; });
  worker.stderr.on('data', (d) => { workerOut += d; });

  browser = await launchChromium(chromium);
  const alice = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const bob = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  await dashboardTests(alice);
  const feedId = await feedTests(alice, bob, started.key);
  await phoneShots(feedId);
  await restartTest(alice);
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
  check(false, `the test stopped: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (worker) {
    const code = await stopProcess(worker);
    check(code === 0, `the worker stops cleanly on SIGTERM (exit ${code})`);
  }
  if (server) {
    const code = await stopProcess(server);
    check(code === 0, `the server stops cleanly on SIGTERM (exit ${code})`);
  }
  check(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(serverOut), 'no sanitizer report in the server\'s output');
  if (process.env.HERALD_DEMO_SERVER_LOG) writeFileSync(process.env.HERALD_DEMO_SERVER_LOG, serverOut);
  if (failures.length) {
    console.log('--- server output ---\n' + serverOut.slice(-4000));
    console.log('--- worker output ---\n' + workerOut.slice(-4000));
  }
  rmSync(dir, { recursive: true, force: true });
}
console.log(`demo: ${passed()} passed, ${failures.length} failed`);
process.exit(failures.length || crashed ? 1 : 0);
