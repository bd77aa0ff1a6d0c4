/*
 * The web admin console (/admin) end to end: the real server with the
 * twitch-jobs app and its seed, the page in headless Chromium (Playwright),
 * and a second client (Node, herald.js over `ws`) that commits while the page
 * watches. Checks sign-in (a wrong key refused, the key kept out of URLs and
 * logs), the tables list and counts, browsing a table page by page through an
 * index in both orders, the schema, one-shot and live queries and function
 * calls, error display, the live tail of another client's commits, stats,
 * the document view, narrow screens, and a reconnect after a server restart;
 * then, against a second server whose app schedules runs, the Scheduled view
 * (scheduledView below). Saves admin.png, admin-narrow.png and
 * admin-scheduled.png in screenshotDir() (lib.mjs: the build folder;
 * scripts/screenshots points it at docs/screenshots).
 *
 * Run as: node test_admin.mjs <herald> <source root>
 * Needs playwright-core and ws (npm ci in tests/js) and /usr/bin/chromium;
 * exits 77 (skipped) without them.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { checker, freePort, importOrSkip, startHerald, stopProcess, launchChromium, watchedPage, screenshotDir } from './lib.mjs';

const [{ WebSocket }, { chromium }] = await importOrSkip(['ws', 'playwright-core'], { chromium: true });
const [herald, root] = process.argv.slice(2);
const { connect } = await import(join(root, 'web-demo', 'herald.js'));
const app = join(root, 'examples', 'twitch-jobs');
const seed = join(app, 'seed', 'videos.jsonl');
const shots = screenshotDir(herald);

const { check, failures } = checker();

function run(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(herald, args);
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`herald ${args.join(' ')} exited ${code}: ${out}`))));
  });
}

const startServer = (data, port) =>
  startHerald(herald, ['--data', data, '--app', app, 'serve', '--port', String(port), '--static', join(root, 'web-demo')]);

/* Waits for a condition in the page; false (not an exception) when it never holds. */
async function until(page, fn, arg, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return true;
  } catch {
    return false;
  }
}

const rowIds = (page) => page.$$eval('#b-docs tbody tr', (rows) => rows.map((r) => r.dataset.id));

/*
 * The Scheduled view, against a second server whose app schedules runs
 * (tests/js/scheduling_app): a
 * run shows as pending with its function, arguments and when it is due, then
 * as a success once it ran; a failing run shows its error; a run cancelled
 * by the app's mutation moves to the finished ones as canceled; finished runs
 * are newest first. Saves admin-scheduled.png (screenshotDir()).
 */
async function scheduledView(browser) {
  const dir = mkdtempSync(join(tmpdir(), 'herald-admin-sched-'));
  const port = await freePort();
  const { proc, key } = await startHerald(herald, ['--data', join(dir, 'data'), '--app', join(root, 'tests', 'js', 'scheduling_app'), 'serve', '--port', String(port), '--static', join(root, 'web-demo')]);
  const db = connect(`ws://127.0.0.1:${port}/ws`, { token: key, WebSocket });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await watchedPage(context, 'scheduled', `http://127.0.0.1:${port}`, check);
  /* What the page asks of the server about _scheduled_functions: its subscriptions, and their ends. */
  const sent = { subs: 0, unsubs: 0 };
  page.on('websocket', (ws) =>
    ws.on('framesent', (f) => {
      const m = JSON.parse(String(f.payload));
      if (m.type === 'sub' && m.query && m.query.table === '_scheduled_functions' && m.query.index) sent.subs++;
      if (m.type === 'unsub') sent.unsubs++;
    }),
  );
  const active = (id, kind) => `#s-active tr[data-id="${id}"][data-state="${kind}"]`;
  const done = (id, kind) => `#s-finished tr[data-id="${id}"][data-state="${kind}"]`;
  const shown = (sel) => until(page, (s) => document.querySelector(s) !== null, sel);
  const cells = (sel) => page.$eval(sel, (r) => [...r.cells].map((c) => c.textContent));
  try {
    await page.goto(`http://127.0.0.1:${port}/admin`);
    await page.fill('#key', key);
    await page.click('#signin-button');
    check(await until(page, () => !document.getElementById('app').hidden), 'scheduled: the console opens');
    await page.click('.tab[data-tab="scheduled"]');
    check(
      await until(page, () => !document.getElementById('tab-scheduled').hidden && !document.getElementById('s-active-empty').hidden && !document.getElementById('s-finished-empty').hidden),
      'scheduled: the view opens and says there are no runs yet',
    );

    /* A run due in 3 s: pending first, with its function, arguments and when it is due. */
    const soon = (await db.mutation('jobs:later', { name: 'welcome-email', ms: 3000 })).value;
    check(await shown(active(soon, 'pending')), `scheduled: a new run shows as pending (${await page.textContent('#tab-scheduled')})`);
    const row = await cells(active(soon, 'pending'));
    check(row[0] === 'pending' && row[1] === 'jobs:bump' && row[2] === '{"name":"welcome-email"}' && row[4] === soon, `scheduled: the pending row reads state, function, arguments and id (${row})`);
    check(/ in \d/.test(row[3]), `scheduled: the pending row says when it is due (${row[3]})`);
    check(await until(page, () => document.getElementById('s-active-count').textContent === '1'), 'scheduled: 1 run pending');

    /* Once it ran: a success, with its completion time, and no longer pending. */
    check(await shown(done(soon, 'success')), 'scheduled: the run shows as a success once it ran');
    check(await page.$(active(soon, 'pending')) === null, 'scheduled: and is no longer pending');
    const ok = await cells(done(soon, 'success'));
    check(ok[0] === 'success' && /^\d\d:\d\d:\d\d\.\d{3}$/.test(ok[3]), `scheduled: the success row shows its completion time (${ok})`);
    check(await until(page, () => document.getElementById('s-active-count').textContent === '0' && !document.getElementById('s-active-empty').hidden), 'scheduled: then none is pending');
    const counted = (await db.query({ table: 'counters' })).value;
    check(counted.length === 1 && counted[0].name === 'welcome-email', `scheduled: the run did its work (${JSON.stringify(counted)})`);

    /* A run that fails: its error shows under it. */
    const boom = (await db.mutation('jobs:laterBoom', { reportId: 'r-17' })).value;
    check(await shown(done(boom, 'failed')), 'scheduled: a failing run shows as failed');
    const err = await page.$eval(`#s-finished tr[data-error-for="${boom}"]`, (r) => r.textContent).catch(() => '');
    check(err.includes('report r-17 has no data'), `scheduled: with its error (${err})`);

    /* A run cancelled by the app's mutation. */
    const later = (await db.mutation('jobs:later', { name: 'weekly-digest', ms: 3600000 })).value;
    check(await shown(active(later, 'pending')), 'scheduled: a run due in an hour is pending');
    const laterRow = await cells(active(later, 'pending'));
    check(/ in 60 min$/.test(laterRow[3]) || / in 1\.0 h$/.test(laterRow[3]), `scheduled: due in an hour (${laterRow[3]})`);
    await db.mutation('jobs:cancel', { id: later });
    check(await shown(done(later, 'canceled')), 'scheduled: a cancelled run shows as canceled');
    check(await page.$(active(later, 'pending')) === null, 'scheduled: and is no longer pending');
    const order = await page.$$eval('#s-finished tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
    check(isDeepStrictEqual(order, [later, boom, soon]), `scheduled: finished runs are newest first (${order})`);

    /* A run's id opens its row, live. */
    await page.click(`${done(later, 'canceled')} td.doc button`);
    check(await until(page, () => document.getElementById('doc-dialog').open && document.getElementById('doc-json').textContent.includes('"kind": "canceled"')), 'scheduled: a run opens as its _scheduled_functions row');
    await page.keyboard.press('Escape');

    /* A few pending runs for the picture. */
    for (const [name, ms] of [['nightly-report', 5400000], ['trial-reminder', 86400000 * 3], ['cache-refresh', 90000]]) await db.mutation('jobs:later', { name, ms });
    check(await until(page, () => document.querySelectorAll('#s-active tr[data-id]').length === 3), 'scheduled: three runs pending');
    const due = await page.$$eval('#s-active tr[data-id] td.fname + td', (c) => c.map((x) => x.textContent));
    check(due[0] === '{"name":"cache-refresh"}', `scheduled: pending runs are due soonest first (${due})`);
    await page.waitForTimeout(1600); /* let the row flashes settle for the picture */
    mkdirSync(shots, { recursive: true });
    await page.locator('section.center').screenshot({ path: join(shots, 'admin-scheduled.png') });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(overflow[0] <= overflow[1], `scheduled: no horizontal overflow at 390 px (${overflow[0]} > ${overflow[1]})`);

    /* The view subscribes only while it is open: four subscriptions, ended when it closes. */
    check(sent.subs === 4, `scheduled: the open view subscribed 4 times (${sent.subs})`);
    const unsubs = sent.unsubs;
    await page.click('.tab[data-tab="browse"]');
    for (let waited = 0; sent.unsubs - unsubs < 4 && waited < 5000; waited += 50) await new Promise((r) => setTimeout(r, 50));
    check(sent.unsubs - unsubs === 4 && sent.subs === 4, `scheduled: leaving the view ends its 4 subscriptions (${sent.unsubs - unsubs})`);
    await page.click('.tab[data-tab="scheduled"]');
    check(await until(page, () => document.querySelectorAll('#s-active tr[data-id]').length === 3 && document.querySelectorAll('#s-finished tr[data-id]').length === 3), 'scheduled: opened again, the view shows the runs again');
    check(sent.subs === 8, `scheduled: with 4 new subscriptions (${sent.subs})`);
  } finally {
    await context.close();
    db.close();
    const code = await stopProcess(proc);
    check(code === 0, `scheduled: the server exits 0 on SIGTERM (${code})`);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herald-admin-'));
  const data = join(dir, 'data');
  const port = await freePort();
  await run(['--data', data, '--app', app, 'import', '--table', 'videos', seed]);
  let { proc, key, output } = await startServer(data, port);
  check(typeof key === 'string' && key.startsWith('hk_'), 'the server wrote an admin key to its file');
  check(!output().includes(key), 'the server never prints the admin key');
  const base = `http://127.0.0.1:${port}`;

  /* The other client: Node, with the JavaScript client. */
  const db = connect(`ws://127.0.0.1:${port}/ws`, { token: key, WebSocket });
  const job1 = (await db.query('videos:getJobById', { jobId: 'job-0001' })).value;
  check(job1 && job1.twitchId === '1900000000', 'job-0001 is in the seed');
  const byStatus = (await db.query({ table: 'videos', index: 'by_status' })).value.map((d) => d._id);
  check(byStatus.length === 8, `the seed has 8 videos (${byStatus.length})`);

  const browser = await launchChromium(chromium);
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const logs = [];
  const urls = [];
  const external = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    urls.push(r.url());
    const u = new URL(r.url());
    if (u.host !== `127.0.0.1:${port}`) external.push(r.url());
  });
  page.on('websocket', (ws) => urls.push(ws.url()));

  try {
    /* Sign in: a wrong key first. */
    const resp = await page.goto(`${base}/admin`);
    check(resp && resp.status() === 200, `GET /admin answers 200 (${resp && resp.status()})`);
    const headers = resp ? resp.headers() : {};
    check(headers['x-content-type-options'] === 'nosniff' &&
          headers['content-security-policy'] === "frame-ancestors 'self'",
          `the page may be framed only by its own site, and no type is sniffed (${JSON.stringify(headers)})`);
    check(await until(page, () => !document.getElementById('signin').hidden), 'the sign-in form shows');
    await page.fill('#key', 'hk_thisisnotthekey000000000000000000000000000');
    await page.click('#signin-button');
    check(
      await until(page, () => {
        const e = document.getElementById('signin-error');
        return !e.hidden && e.textContent.includes('the key is not valid');
      }),
      'a wrong key shows "the key is not valid"',
    );
    check(await page.evaluate(() => document.getElementById('app').hidden), 'a wrong key does not open the console');
    check((await page.evaluate(() => sessionStorage.getItem('herald.adminKey'))) === null, 'a wrong key is not kept');

    /* The right key. */
    await page.fill('#key', key);
    await page.click('#signin-button');
    check(await until(page, () => !document.getElementById('app').hidden), 'the right key opens the console');
    check((await page.evaluate(() => sessionStorage.getItem('herald.adminKey'))) === key, 'the key is kept in sessionStorage');
    check(!page.url().includes(key), 'the key is not in the URL');

    /* Tables with their counts. */
    check(
      await until(page, () => document.querySelector('#tables li[data-table="videos"] .tcount')?.textContent === '8'),
      `the tables list shows videos with 8 documents (${await page.textContent('#tables')})`,
    );
    const indexText = await page.textContent('#tables li[data-table="videos"] .tidx');
    check(['by_status', 'by_job_id', 'by_twitch_id', 'by_created_at'].every((i) => indexText.includes(i)), `the tables list names the indexes (${indexText})`);

    /* Browse videos through by_status, 3 per page. */
    await page.click('#tables li[data-table="videos"] button');
    check(await until(page, () => document.querySelectorAll('#b-docs tbody tr').length === 8), 'videos opens with its first page (all 8 fit)');
    await page.selectOption('#b-index', 'by_status');
    await page.selectOption('#b-size', '3');
    const pages = [byStatus.slice(0, 3), byStatus.slice(3, 6), byStatus.slice(6)];
    const waitPage = async (ids, n) =>
      until(
        page,
        ([want, n]) => {
          const got = [...document.querySelectorAll('#b-docs tbody tr')].map((r) => r.dataset.id);
          return document.getElementById('b-info').dataset.page === String(n) && JSON.stringify(got) === JSON.stringify(want);
        },
        [ids, n],
      );
    for (let i = 0; i < pages.length; i++) {
      if (i > 0) await page.click('#b-next');
      check(await waitPage(pages[i], i + 1), `by_status page ${i + 1} holds ${JSON.stringify(pages[i])} (got ${JSON.stringify(await rowIds(page))})`);
    }
    check(await page.isDisabled('#b-next'), 'Next is disabled on the last page');
    check((await page.textContent('#b-info')).includes('end'), 'the last page says so');
    await page.click('#b-prev');
    check(await waitPage(pages[1], 2), `Previous goes back to page 2 (got ${JSON.stringify(await rowIds(page))})`);
    await page.click('#b-prev');
    check(await waitPage(pages[0], 1), 'Previous goes back to page 1');
    check(await page.isDisabled('#b-prev'), 'Previous is disabled on page 1');
    const keyHeader = await page.$$eval('#b-docs th.key', (th) => th.map((t) => t.textContent));
    check(isDeepStrictEqual(keyHeader, ['status']), `the index field is marked in the table header (${keyHeader})`);
    await page.selectOption('#b-order', 'desc');
    const desc = [...byStatus].reverse();
    check(await waitPage(desc.slice(0, 3), 1), `descending order starts from the other end (got ${JSON.stringify(await rowIds(page))})`);
    await page.click('#b-next');
    check(await waitPage(desc.slice(3, 6), 2), 'descending page 2');
    await page.click('#b-view-json');
    check(await until(page, () => document.querySelectorAll('#b-docs details.jsondoc').length === 3), 'the JSON view shows the page as documents');
    const jsonText = await page.textContent('#b-docs');
    check(jsonText.includes(`"_id": "${desc[3]}"`), 'the JSON view shows formatted JSON');
    await page.click('#b-view-table');
    await page.selectOption('#b-order', 'asc');
    await page.selectOption('#b-size', '10');
    check(await until(page, () => document.querySelectorAll('#b-docs tbody tr').length === 8), 'back to one page of 8');

    /* Schema. */
    await page.click('.tab[data-tab="schema"]');
    check(await until(page, () => !document.getElementById('tab-schema').hidden && document.getElementById('schema').textContent.includes('"by_status"')), 'the schema view shows the schema');
    const schemaText = await page.textContent('#schema');
    let schema = null;
    try {
      schema = JSON.parse(schemaText);
    } catch (e) {
      check(false, `the schema view is JSON (${e.message})`);
    }
    check(schema && schema.tables && schema.tables.videos && schema.tables.videos.document.fields.twitchId.type === 'string', 'the schema view is the canonical schema');
    await page.click('.tab[data-tab="browse"]');

    /* The function list. */
    check(await until(page, () => document.getElementById('functions').textContent.includes('videos:getJobById')), 'the functions are listed');

    /* Query errors show their code and message. */
    await page.fill('#q', '{"table": "nope"}');
    await page.click('#q-run');
    check(
      await until(page, () => {
        const e = document.getElementById('q-error');
        return !e.hidden && e.textContent.includes('NotFound') && e.textContent.includes('nope');
      }),
      `a query error shows its code and message (${await page.textContent('#q-error')})`,
    );
    await page.fill('#q', 'videos:getJobById {"jobId": 7}');
    await page.click('#q-run');
    check(await until(page, () => !document.getElementById('q-error').hidden && /InvalidArgument|ValidationError/.test(document.getElementById('q-error').textContent)), `bad arguments show the server's error (${await page.textContent('#q-error')})`);

    /* A raw query, once. */
    const raw = { table: 'videos', index: 'by_status', range: [{ eq: ['status', 'Queued'] }] };
    await page.fill('#q', JSON.stringify(raw));
    await page.click('#q-run');
    check(await until(page, () => !document.getElementById('q-result').hidden && document.getElementById('q-error').hidden), 'a raw query shows a result');
    const rawWant = (await db.query(raw)).value;
    let rawGot = null;
    try {
      rawGot = JSON.parse(await page.textContent('#q-result'));
    } catch {}
    check(isDeepStrictEqual(rawGot, rawWant) && rawWant.length > 0, `the raw query result is the query's (${JSON.stringify(rawGot)?.slice(0, 200)})`);

    /* A function, once, then watched. */
    await page.fill('#q', 'videos:getJobById {"jobId":"job-0001"}');
    await page.click('#q-run');
    check(await until(page, () => document.getElementById('q-result').textContent.includes('"jobId": "job-0001"') && document.getElementById('q-status').textContent.includes('one shot')), 'a function call shows its result');
    await page.click('#q-watch');
    check(await until(page, () => document.getElementById('q-status').textContent.includes('live')), 'Watch shows a live result');
    check(!(await page.textContent('#q-result')).includes('"progressPercentage": 42'), 'the watched job is not at 42% yet');
    await page.evaluate(() => (window.__notReloaded = true));

    /* Another client commits: the tail shows it, the watched result follows. */
    const r42 = await db.mutation('videos:updateJobProgress', { twitchId: '1900000000', jobId: 'job-0001', progressPercentage: 42 });
    check(typeof r42.version === 'number', `the mutation committed (${JSON.stringify(r42)})`);
    const tailRow = { version: String(r42.version), table: 'videos', op: 'update', doc: job1._id };
    check(
      await until(page, (want) => [...document.querySelectorAll('#tail tr')].some((r) => r.dataset.version === want.version && r.dataset.table === want.table && r.dataset.op === want.op && r.dataset.doc === want.doc), tailRow),
      `the live tail shows version ${r42.version}, videos, update, ${job1._id} (${await page.textContent('#tail')})`,
    );
    const rowText = await page.$$eval('#tail tr', (rows) => rows[0] && [...rows[0].cells].map((c) => c.textContent));
    check(isDeepStrictEqual(rowText, [tailRow.version, 'videos', 'update', job1._id]), `the tail row reads version, table, op, document (${rowText})`);
    check(
      await until(page, (v) => {
        const pre = document.getElementById('q-result');
        return pre.textContent.includes('"progressPercentage": 42') && pre.dataset.version === v;
      }, String(r42.version)),
      `the watched function result shows progressPercentage 42 at version ${r42.version}`,
    );
    check(await until(page, () => /updated [1-9]\d*×/.test(document.getElementById('q-status').textContent)), `the watch says it updated (${await page.textContent('#q-status')})`);
    check(await page.evaluate(() => window.__notReloaded === true), 'the page was not reloaded');
    check(await until(page, (v) => document.getElementById('top-version').textContent === v, String(r42.version)), 'the top bar shows the current version');

    /* The browsed page follows commits too (videos, by_status page of 10). */
    check(
      await until(page, (id) => {
        const row = document.querySelector(`#b-docs tr[data-id="${id}"]`);
        return row && [...row.cells].some((c) => c.textContent === '42');
      }, job1._id),
      'the browsed page shows the new progress',
    );

    /* Stats. */
    check(
      await until(page, () => {
        const n = (id) => Number(document.getElementById(id).textContent.replace(/,/g, ''));
        return n('st-connections') >= 1 && n('st-commits') > 0;
      }),
      `stats show connections >= 1 and commits > 0 (connections ${await page.textContent('#st-connections')}, commits ${await page.textContent('#st-commits')})`,
    );
    check(await until(page, () => /^\d/.test(document.getElementById('st-p99').textContent)), `stats show a p99 commit-to-push latency (${await page.textContent('#st-p99')})`);
    check(await until(page, () => /\d/.test(document.getElementById('st-used').textContent) && /\d/.test(document.getElementById('st-max').textContent)), 'stats show the map use');

    /* An insert: the tail shows it and the count follows. */
    const created = await db.mutation('videos:create', { twitchId: '1999999999', title: 'Admin console walkthrough', jobId: 'job-0099' });
    check(await until(page, (id) => [...document.querySelectorAll('#tail tr')].some((r) => r.dataset.op === 'insert' && r.dataset.doc === id), created.value), 'the tail shows an insert');
    check(await until(page, () => document.querySelector('#tables li[data-table="videos"] .tcount')?.textContent === '9'), 'the table count follows the insert');

    /* Clicking a document id in the tail opens it, live. */
    await page.click(`#tail tr[data-doc="${job1._id}"] button`);
    check(await until(page, () => document.getElementById('doc-dialog').open && document.getElementById('doc-json').textContent.includes('"progressPercentage": 42')), 'a document id in the tail opens the document');
    await db.mutation('videos:updateJobProgress', { twitchId: '1900000000', jobId: 'job-0001', progressPercentage: 43 });
    check(await until(page, () => document.getElementById('doc-json').textContent.includes('"progressPercentage": 43')), 'the open document follows commits');
    await db.mutation('videos:updateJobProgress', { twitchId: '1900000000', jobId: 'job-0001', progressPercentage: 42 });
    await page.click('#doc-dialog .dialoghead button');
    check(await until(page, () => !document.getElementById('doc-dialog').open), 'the close button closes the document');
    await page.click(`#b-docs tr[data-id="${job1._id}"]`);
    check(await until(page, () => document.getElementById('doc-dialog').open && document.getElementById('doc-json').textContent.includes('"progressPercentage": 42')), 'a browsed row opens its document');
    await page.keyboard.press('Escape');
    check(await until(page, () => !document.getElementById('doc-dialog').open), 'Escape closes the document');

    /* A mutation function run from the console. */
    await page.fill('#q', 'videos:updateJobProgress {"twitchId": "1900007919", "jobId": "job-0002", "progressPercentage": 64, "currentStage": "Downloading"}');
    await page.click('#q-run');
    check(await until(page, () => document.getElementById('q-status').textContent.includes('committed')), `a mutation runs from the query box (${await page.textContent('#q-status')} ${await page.textContent('#q-error')})`);
    const job2 = (await db.query('videos:getJobById', { jobId: 'job-0002' })).value;
    check(job2.progressPercentage === 64, 'the console mutation was applied');

    /* A few more commits from the worker, for a populated view; watch job-0001 again. */
    for (const [twitchId, jobId, p] of [['1900015838', 'job-0003', 31], ['1900007919', 'job-0002', 71], ['1900015838', 'job-0003', 38]]) {
      await db.mutation('videos:updateJobProgress', { twitchId, jobId, progressPercentage: p });
    }
    await page.fill('#q', 'videos:getJobById {"jobId": "job-0001"}');
    await page.click('#q-watch');
    check(await until(page, () => document.getElementById('q-status').textContent.includes('live') && document.getElementById('q-result').textContent.includes('"progressPercentage": 42')), 'watching again shows the current result');
    const lastV = (await db.mutation('videos:updateJobProgress', { twitchId: '1900000000', jobId: 'job-0001', progressPercentage: 42, currentStage: 'Downloading' })).version;
    check(await until(page, (v) => document.getElementById('q-result').dataset.version === v && /updated 1×/.test(document.getElementById('q-status').textContent), String(lastV)), 'the second watch updates too');
    await page.selectOption('#b-index', 'by_status');
    check(await until(page, () => document.querySelectorAll('#b-docs tbody tr').length === 9), 'browse shows the 9 videos');
    await until(page, () => Number(document.getElementById('st-commits').textContent) >= 9, null, 5000);
    await page.waitForTimeout(1200); /* let the 1 s stats refresh and the row flashes settle for the picture */
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'admin.png'), fullPage: true });

    /* Narrow screens: nothing sticks out sideways. */
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(overflow[0] <= overflow[1], `no horizontal overflow at 390 px (${overflow[0]} > ${overflow[1]})`);
    await page.screenshot({ path: join(shots, 'admin-narrow.png'), fullPage: false });
    await page.setViewportSize({ width: 1440, height: 900 });

    /* A reload keeps the tab signed in (sessionStorage). */
    await page.reload();
    check(await until(page, () => !document.getElementById('app').hidden && document.querySelector('#tables li[data-table="videos"] .tcount')?.textContent === '9'), 'a reload stays signed in');
    await page.fill('#q', 'videos:getJobById {"jobId": "job-0001"}');
    await page.click('#q-watch');
    check(await until(page, () => document.getElementById('q-status').textContent.includes('live')), 'watching after the reload');

    /* The server restarts: the page reconnects, signs in again and tails again. */
    const code1 = await stopProcess(proc);
    check(code1 === 0, `the server exits 0 on SIGTERM (${code1})`);
    check(await until(page, () => document.getElementById('conn').dataset.state === 'reconnecting'), 'the page shows it lost the server');
    ({ proc } = await startServer(data, port));
    check(await until(page, () => document.getElementById('conn').dataset.state === 'open', null, 30000), 'the page reconnects');
    const after = await db.mutation('videos:updateJobProgress', { twitchId: '1900000000', jobId: 'job-0001', progressPercentage: 44 });
    check(await until(page, (v) => [...document.querySelectorAll('#tail tr')].some((r) => r.dataset.version === v), String(after.version), 30000), 'after the restart the tail shows new commits');
    check(await until(page, () => document.getElementById('q-result').textContent.includes('"progressPercentage": 44'), null, 30000), 'after the restart the watched result follows again');
    check(await until(page, (v) => Number(document.querySelector('#tail tr.gap')?.dataset.gap) < Number(v), String(after.version)), 'the tail marks where it reconnected');

    /* A reload that cannot reach /ws (Playwright closes the page's sockets): the page keeps
     * the key, tries again, and signs in by itself once /ws answers. */
    let blockWs = true;
    await page.routeWebSocket(/\/ws$/, (ws) => (blockWs ? ws.close({ code: 1011, reason: 'blocked by the test' }) : ws.connectToServer()));
    await page.reload();
    check(
      await until(page, () => !document.getElementById('signin').hidden && document.getElementById('signin-error').textContent.includes('trying again')),
      `a reload that cannot reach /ws says it is trying again (${await page.textContent('#signin-error')})`,
    );
    check((await page.evaluate(() => sessionStorage.getItem('herald.adminKey'))) === key, 'the key is kept while the page tries again');
    blockWs = false;
    check(
      await until(page, () => !document.getElementById('app').hidden && document.querySelector('#tables li[data-table="videos"] .tcount')?.textContent === '9', null, 30000),
      'the page signs in by itself once /ws answers',
    );

    /* Sign out forgets the key. */
    await page.click('#signout');
    check(await until(page, () => !document.getElementById('signin').hidden), 'Sign out shows the sign-in form');
    check((await page.evaluate(() => sessionStorage.getItem('herald.adminKey'))) === null, 'Sign out forgets the key');

    check(!urls.some((u) => u.includes(key)), 'the key never appears in a URL');
    check(!logs.some((l) => l.includes(key)), 'the key never appears in the console');
    /* Chromium logs the refused reconnects while the server was down: those are expected. */
    const errors = logs.filter((l) => /^(pageerror|error)/.test(l) && !/WebSocket connection to .* failed/.test(l));
    check(errors.length === 0, `no page errors (${errors.join(' | ')})`);
    check(external.length === 0, `the page loads nothing from outside (${external})`);

    await scheduledView(browser);
  } finally {
    await browser.close();
    db.close();
    const code = await stopProcess(proc);
    check(code === 0, `the server exits 0 on SIGTERM (${code})`);
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (e) {
  check(false, `exception: ${e.stack || e}`);
}
if (failures.length) {
  console.log(`${failures.length} failure(s)`);
  process.exit(1);
}
console.log('admin console: all checks passed');
