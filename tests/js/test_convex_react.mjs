/*
 * A React page on the official Convex React client (convex/react from npm,
 * unmodified) in headless Chromium against Herald (docs/convex-clients.md).
 * The page is tests/js/convex_page/src, bundled here with esbuild and served
 * by Herald itself (--static), on a copy of examples/social (seed 004) with a
 * provider of the test's own and three small modules (jobs, counters,
 * testing). It checks:
 *
 *   1. useQuery of a job's progress moves as a worker (ConvexHttpClient with
 *      the admin key) pushes 0, 10, ..., 100: the page renders every value,
 *      one at a time and then in a burst;
 *   2. useMutation: a button's mutation resolves and its result renders,
 *      with the query it moves;
 *   3. ConvexProviderWithAuth (which calls client.setAuth): useConvexAuth()
 *      stays false for a token of a key nobody trusts, and flips to true
 *      for a good one; a query re-runs as the user;
 *   4. usePaginatedQuery over posts:feed (3 per page): load every page while
 *      another client (ConvexHttpClient, signed in) creates posts, deletes
 *      posts at page boundaries, and inserts posts between pages and at the
 *      end; after every change the page shows every post exactly once, in
 *      order, the same list as a direct query from Node;
 *   5. `herald codegen` types: tsc --noEmit passes over the page, and fails
 *      for a copy that calls a function that does not exist and for one that
 *      passes a wrong argument type.
 *
 *   node tests/js/test_convex_react.mjs path/to/herald path/to/source
 * HERALD_TEST_FRAMES=1 prints the page's sync frames; HERALD_TEST_KEEP=1
 * keeps the temporary folder (app, page project, bundle, data).
 * Needs convex, react, react-dom, esbuild, typescript, playwright-core (npm
 * ci in tests/js) and /usr/bin/chromium; exits 77 (skipped) without them.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checker, freePort, importOrSkip, startHerald, stopProcess, launchChromium } from './lib.mjs';

const [{ chromium }, esbuild, { ConvexHttpClient }] = await importOrSkip(
  ['playwright-core', 'esbuild', 'convex/browser', 'react', 'react-dom/client', 'convex/react'],
  { chromium: true },
);
const [herald, root] = process.argv.slice(2);
if (!herald || !root) {
  console.log('usage: node test_convex_react.mjs <herald> <source root>');
  process.exit(2);
}
const HERE = dirname(fileURLToPath(import.meta.url));
const MODULES = join(HERE, 'node_modules');
const TSC = join(MODULES, '.bin', 'tsc');
if (!existsSync(TSC)) {
  console.log(`${TSC} is missing (npm ci in tests/js): skipped`);
  process.exit(77);
}

const { check, failures, passed } = checker();
const t0 = Date.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* ---- the app: examples/social, our own provider, and modules for the page ---- */

const work = mkdtempSync(join(tmpdir(), 'herald-convex-react-'));
const app = join(work, 'app');
cpSync(join(root, 'examples', 'social'), app, { recursive: true });
const schema = readFileSync(join(app, 'schema.ts'), 'utf8');
const withJobs = schema.replace(
  /(\n\s*products: defineTable)/,
  `
    jobs: defineTable({ jobId: v.string(), progress: v.number() }).index("by_job", ["jobId"]),
    counters: defineTable({ name: v.string(), n: v.number() }).index("by_name", ["name"]),$1`,
);
if (withJobs === schema) throw new Error('examples/social/schema.ts changed: no products table to put jobs before');
writeFileSync(join(app, 'schema.ts'), withJobs);
writeFileSync(
  join(app, 'functions', 'jobs.lua'),
  `-- A job's progress, pushed by a worker with the admin key.
local M = {}
local function find(ctx, jobId)
  return ctx.db:query("jobs"):withIndex("by_job", function(q) return q:eq("jobId", jobId) end):first()
end
M.get = herald.query{args = {jobId = v.string()}, handler = function(ctx, args) return find(ctx, args.jobId) end}
M.set = herald.mutation{args = {jobId = v.string(), progress = v.number()}, handler = function(ctx, args)
  if not ctx.auth:isAdmin() then herald.error{code = "FORBIDDEN", message = "workers only"} end
  local j = find(ctx, args.jobId)
  if j then ctx.db:patch(j._id, {progress = args.progress})
  else ctx.db:insert("jobs", {jobId = args.jobId, progress = args.progress}) end
  return nil
end}
return M
`,
);
writeFileSync(
  join(app, 'functions', 'counters.lua'),
  `-- A counter the page's button moves, and who the caller is.
local M = {}
local function find(ctx, name)
  return ctx.db:query("counters"):withIndex("by_name", function(q) return q:eq("name", name) end):first()
end
M.get = herald.query{args = {name = v.string()}, returns = v.number(), handler = function(ctx, args)
  local c = find(ctx, args.name)
  return c and c.n or 0
end}
M.inc = herald.mutation{args = {name = v.string()}, returns = v.number(), handler = function(ctx, args)
  local c = find(ctx, args.name)
  if c then ctx.db:patch(c._id, {n = c.n + 1}) return c.n + 1 end
  ctx.db:insert("counters", {name = args.name, n = 1})
  return 1
end}
M.whoami = herald.query{args = {}, handler = function(ctx)
  local u = ctx.auth:getUserIdentity()
  return u and u.subject or nil
end}
return M
`,
);
/* posts:create stamps createdAt with now; a post between two pages needs a chosen one. */
writeFileSync(
  join(app, 'functions', 'testing.lua'),
  `local M = {}
M.insertPost = herald.internalMutation{
  args = {authorId = v.string(), text = v.string(), createdAt = v.number()},
  handler = function(ctx, args)
    return ctx.db:insert("posts", {authorId = args.authorId, text = args.text,
      createdAt = args.createdAt, updatedAt = args.createdAt})
  end}
return M
`,
);
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ISSUER = 'https://social.herald.test/';
const AUDIENCE = 'social';
writeFileSync(
  join(app, 'keys', 'test.jwks.json'),
  JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }] }),
);
writeFileSync(
  join(app, 'auth.config.json'),
  JSON.stringify({ providers: [{ issuer: ISSUER, audience: AUDIENCE, jwks: 'keys/test.jwks.json', algorithms: ['RS256'] }] }),
);
const b64u = (x) => Buffer.from(x).toString('base64url');
function token(subject, key = privateKey) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'k1' }));
  const body = b64u(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: subject, iat: now, exp: now + 3600 }));
  const sig = sign('RSA-SHA256', Buffer.from(`${head}.${body}`), key).toString('base64url');
  return `${head}.${body}.${sig}`;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
  return { code: r.status, out: (r.stdout || '') + (r.stderr || '') + (r.error ? String(r.error) : '') };
}

/* ---- the frontend project: the page, convex/_generated from codegen, node_modules ---- */

const proj = join(work, 'web');
mkdirSync(proj);
cpSync(join(HERE, 'convex_page', 'src'), join(proj, 'src'), { recursive: true });
symlinkSync(MODULES, join(proj, 'node_modules'));
const gen = run(herald, ['--app', app, 'codegen', '--out', join(proj, 'convex', '_generated')]);
check(gen.code === 0 && existsSync(join(proj, 'convex', '_generated', 'api.js')),
  `herald codegen writes convex/_generated (exit ${gen.code}: ${gen.out.trim()})`);

/* 5. Types: the page type-checks against the generated api; two broken copies do not. */
function tsc(name, edit) {
  const dir = join(proj, name);
  if (edit) {
    mkdirSync(dir, { recursive: true });
    for (const f of ['App.tsx', 'main.tsx', 'react-dom-client.d.ts']) {
      const text = readFileSync(join(proj, 'src', f), 'utf8');
      const changed = f === 'App.tsx' ? text.replace(edit[0], edit[1]) : text;
      if (f === 'App.tsx' && changed === text) throw new Error(`${name}: ${edit[0]} is not in App.tsx`);
      writeFileSync(join(dir, f), changed);
    }
  }
  const config = join(proj, `tsconfig.${name}.json`);
  writeFileSync(config, JSON.stringify({
    compilerOptions: {
      strict: true, jsx: 'react-jsx', module: 'esnext', moduleResolution: 'bundler', target: 'es2022',
      lib: ['es2022', 'dom', 'dom.iterable'], noEmit: true, skipLibCheck: true, types: [],
    },
    include: [`${name}/**/*.tsx`, `${name}/**/*.d.ts`],
  }));
  return run(TSC, ['--noEmit', '-p', config], { cwd: proj });
}
{
  const ok = tsc('src');
  check(ok.code === 0, `tsc --noEmit passes over the page (exit ${ok.code}: ${ok.out.trim().slice(0, 2000)})`);
  const missing = tsc('bad-function', ['api.jobs.get, { jobId }', 'api.jobs.getNothing, { jobId }']);
  check(missing.code !== 0 && /getNothing/.test(missing.out),
    `tsc fails for a function that does not exist (exit ${missing.code}: ${missing.out.trim().slice(0, 600)})`);
  const wrong = tsc('bad-argument', ['inc({ name: "clicks" })', 'inc({ name: 42 })']);
  check(wrong.code !== 0 && /number/.test(wrong.out) && /string/.test(wrong.out),
    `tsc fails for a wrong argument type (exit ${wrong.code}: ${wrong.out.trim().slice(0, 600)})`);
}

/* Bundle with esbuild into the folder Herald serves. */
const www = join(work, 'www');
mkdirSync(www);
await esbuild.build({
  entryPoints: [join(proj, 'src', 'main.tsx')],
  bundle: true,
  outfile: join(www, 'page.js'),
  format: 'esm',
  jsx: 'automatic',
  loader: { '.tsx': 'tsx' },
  platform: 'browser',
  define: { 'process.env.NODE_ENV': '"development"' },
  logLevel: 'error',
  sourcemap: 'inline',
});
writeFileSync(
  join(www, 'index.html'),
  '<!doctype html><meta charset="utf-8"><title>Convex React on Herald</title><link rel="icon" href="data:,"><div id="root"></div><script type="module" src="page.js"></script>\n',
);

/* ---- the server ---- */

const data = join(work, 'data');
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let serverOut = '';
const server = await startHerald(herald, ['--data', data, '--app', app, '--no-sync', 'serve', '--port', String(port), '--static', www], {
  onOutput: (d) => { serverOut += d; },
});
const worker = new ConvexHttpClient(base);
worker.setAdminAuth(server.key);
const poster = new ConvexHttpClient(base);
poster.setAuth(token('bob'));

let browser = null;
const logs = [];
const frames = [];

/* Waits for a condition in the page; false (not an exception) when it never holds. */
async function until(page, fn, arg, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 30 });
    return true;
  } catch {
    return false;
  }
}

/* Every post, newest first, straight from Herald (posts:feed with room for all). */
async function allPosts() {
  const r = await poster.query('posts:feed', { paginationOpts: { numItems: 100, cursor: null } });
  if (!r.isDone) throw new Error('more than 100 posts');
  return r.page.map((p) => ({ id: p._id, text: p.text, createdAt: p.createdAt }));
}

const renderedFeed = (page) =>
  page.$$eval('#feed > li', (lis) => lis.map((li) => ({ id: li.dataset.id, text: li.textContent })));

/*
 * After a change: waits for the page to settle, then checks that it shows
 * every post exactly once, in order (all of them once every page is loaded,
 * else a prefix of them), against a direct query from Node.
 */
async function checkFeed(page, what, { complete = true } = {}) {
  const want = await allPosts();
  const same = (got) =>
    (complete ? got.length === want.length : got.length > 0 && got.length <= want.length) &&
    got.every((p, i) => p.id === want[i].id);
  let got = await renderedFeed(page);
  const end = Date.now() + 8000;
  while (!same(got) && Date.now() < end) {
    await sleep(50);
    got = await renderedFeed(page);
  }
  /* Settled: still the same a moment later (a late Transition would change it). */
  await sleep(300);
  got = await renderedFeed(page);
  const ids = got.map((p) => p.id);
  const dups = ids.filter((id, i) => ids.indexOf(id) !== i);
  const missing = want.filter((p) => !ids.includes(p.id)).map((p) => p.text);
  const status = await page.textContent('#feed-status');
  check(same(got), `feed ${what}: every post once, in order (${status}; shown ${got.length} [${got.map((p) => p.text).join(', ')}]` +
    ` want ${want.length} [${want.map((p) => p.text).join(', ')}]; missing [${missing.join(', ')}], duplicated [${dups.join(', ')}])`);
  return want;
}

async function loadAll(page, between) {
  for (let i = 0; i < 40; i++) {
    const ready = await until(page, () => ['CanLoadMore', 'Exhausted'].includes(document.getElementById('feed-status').textContent));
    if (!ready) {
      check(false, `feed: stuck at ${await page.textContent('#feed-status')}`);
      return;
    }
    if ((await page.textContent('#feed-status')) === 'Exhausted') return;
    await page.click('#more');
    await until(page, () => document.getElementById('feed-status').textContent !== 'LoadingMore');
    if (between) await between(i);
  }
  check(false, 'feed: never exhausted');
}

try {
  /* Seed: a job at 0, and ten posts by bob. */
  await worker.mutation('jobs:set', { jobId: 'job-1', progress: 0 });
  for (let i = 0; i < 10; i++) await poster.mutation('posts:create', { text: `p${i}` });

  browser = await launchChromium(chromium);
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 400) logs.push(`http ${r.status()} ${r.url()}`);
  });
  page.on('websocket', (ws) => {
    frames.push(`open ${ws.url()}`);
    ws.on('framesent', (f) => frames.push(`C ${f.payload}`));
    ws.on('framereceived', (f) => frames.push(`S ${f.payload}`));
    ws.on('close', () => frames.push('closed'));
  });
  const resp = await page.goto(`${base}/index.html?convex=${encodeURIComponent(base)}&job=job-1`);
  check(resp && resp.status() === 200, `Herald serves the page (${resp && resp.status()})`);

  /* 1. useQuery follows the worker: each value, then a burst. */
  check(await until(page, () => document.getElementById('progress')?.textContent === '0'),
    `useQuery: the job shows 0 (${await page.textContent('#progress').catch(() => 'no page')})`);
  for (let p = 10; p <= 100; p += 10) {
    await worker.mutation('jobs:set', { jobId: 'job-1', progress: p });
    if (!(await until(page, (v) => document.getElementById('progress').textContent === String(v), p))) {
      check(false, `useQuery: progress ${p} never rendered (${await page.textContent('#progress')})`);
      break;
    }
  }
  let seen = await page.evaluate(() => window.heraldPage.progressSeen);
  check(seen.join() === '0,10,20,30,40,50,60,70,80,90,100', `useQuery: every progress value rendered in order (${seen})`);
  for (let p = 0; p <= 100; p += 5) await worker.mutation('jobs:set', { jobId: 'job-1', progress: p });
  check(await until(page, () => document.getElementById('progress').textContent === '100'), 'useQuery: a burst of pushes ends at 100');
  seen = (await page.evaluate(() => window.heraldPage.progressSeen)).slice(11);
  /* React may render a burst's values together, so some are skipped; none may go back. */
  check(seen.length > 0 && seen.at(-1) === 100 && seen.every((v, i) => i === 0 || v > seen[i - 1]),
    `useQuery: the burst renders in order, never going back, ending at 100 (${seen})`);

  /* 2. useMutation: three clicks, each result rendered, the counter's query follows. */
  check(await until(page, () => document.getElementById('clicks').textContent === '0'), 'useMutation: the counter starts at 0');
  for (let i = 1; i <= 3; i++) {
    await page.click('#inc');
    check(await until(page, (n) => document.getElementById('inc-result').textContent === String(n), i),
      `useMutation: click ${i} renders its result (${await page.textContent('#inc-result')})`);
  }
  check(await until(page, () => document.getElementById('clicks').textContent === '3'),
    `useMutation: the query shows 3 (${await page.textContent('#clicks')})`);
  check((await worker.query('counters:get', { name: 'clicks' })) === 3, 'useMutation: each click applied once');

  /* 3. Sign-in through ConvexProviderWithAuth (client.setAuth) flips useConvexAuth. */
  check(await until(page, () => document.getElementById('auth').textContent === 'no' &&
    document.getElementById('whoami').textContent === 'null'), `auth: signed out first (${await page.textContent('#auth')})`);
  await page.evaluate((t) => window.heraldPage.signIn(t), token('mallory', stranger));
  await sleep(1500);
  check(await until(page, () => document.getElementById('auth').textContent === 'no'),
    `auth: a token signed by an unknown key is not accepted (${await page.textContent('#auth')})`);
  check((await page.textContent('#whoami')) === 'null', `auth: nobody is signed in after it (${await page.textContent('#whoami')})`);
  await page.evaluate((t) => window.heraldPage.signIn(t), token('ada'));
  check(await until(page, () => document.getElementById('auth').textContent === 'yes'),
    `auth: useConvexAuth().isAuthenticated becomes true (${await page.textContent('#auth')})`);
  check(await until(page, () => document.getElementById('whoami').textContent === 'ada'),
    `auth: queries re-run as the user (${await page.textContent('#whoami')})`);
  const authSeen = await page.evaluate(() => window.heraldPage.authSeen);
  check(authSeen[0] !== 'yes' && authSeen.at(-1) === 'yes' && !authSeen.slice(0, -1).includes('yes'),
    `auth: states rendered (${authSeen})`);
  /* The job and the counter kept working across the sign-in. */
  await worker.mutation('jobs:set', { jobId: 'job-1', progress: 42 });
  check(await until(page, () => document.getElementById('progress').textContent === '42'), 'useQuery: still live after sign-in');

  /* 4. usePaginatedQuery while another client creates and deletes posts. */
  check(await until(page, () => document.getElementById('feed-status').textContent === 'CanLoadMore'),
    `feed: the first page loads (${await page.textContent('#feed-status')})`);
  let all = await checkFeed(page, 'first page', { complete: false });
  check((await renderedFeed(page)).length === 3, 'feed: the first page holds 3 posts');
  /* While loading: a new post on top, and the posts either side of the first boundary go. */
  await loadAll(page, async (i) => {
    if (i !== 0) return;
    all = await checkFeed(page, 'two pages', { complete: false });
    await poster.mutation('posts:create', { text: 'new1' });
    all = await checkFeed(page, 'after a new post while loading', { complete: false });
    const shown = await renderedFeed(page);
    /* Pages are [new1 p9 p8 p7] [p6 p5 p4]: p7 ends page 1, p6 starts page 2. */
    const last1 = shown.find((p) => p.text === 'p7');
    const first2 = shown.find((p) => p.text === 'p6');
    await poster.mutation('posts:remove', { postId: last1.id });
    await poster.mutation('posts:remove', { postId: first2.id });
    all = await checkFeed(page, 'after deleting both sides of the first boundary', { complete: false });
  });
  check((await page.textContent('#feed-status')) === 'Exhausted', `feed: every page loaded (${await page.textContent('#feed-status')})`);
  all = await checkFeed(page, 'all pages');
  const at = (text) => all.find((p) => p.text === text);
  /* A post between every third and the next: where the pages of 3 were cut when they loaded. */
  for (let i = 1; i < all.length; i++) {
    if (i % 3 !== 0) continue;
    const mid = (all[i - 1].createdAt + all[i].createdAt) / 2;
    await worker.mutation('testing:insertPost', { authorId: 'bob', text: `mid${i}`, createdAt: mid });
  }
  all = await checkFeed(page, 'after posts inserted between pages');
  /* Older than everything: the last page takes it. */
  await worker.mutation('testing:insertPost', { authorId: 'bob', text: 'oldest', createdAt: all.at(-1).createdAt - 1000 });
  all = await checkFeed(page, 'after a post older than all');
  /* Four new posts on top: page 1 outgrows 2 x 3 and the client splits it (endCursor). */
  for (let i = 2; i <= 5; i++) await poster.mutation('posts:create', { text: `new${i}` });
  all = await checkFeed(page, 'after four new posts (page 1 splits)');
  await sleep(1000);
  all = await checkFeed(page, 'a second after the split');
  check(frames.some((f) => f.startsWith('S ') && f.includes('"splitCursor"')) &&
    frames.some((f) => f.startsWith('C ') && f.includes('"endCursor"')),
    'feed: Herald sent a splitCursor and the client asked for the halves (endCursor)');
  /* Deletes at every third post (where the pages were first cut) and the last. */
  for (let i = 2; i < all.length; i += 3) await poster.mutation('posts:remove', { postId: all[i].id });
  await poster.mutation('posts:remove', { postId: all.at(-1).id });
  all = await checkFeed(page, 'after deletes across the pages');
  await poster.mutation('posts:create', { text: 'new6' });
  all = await checkFeed(page, 'after one more new post');

  const errors = logs.filter((l) => l.startsWith('pageerror') || (l.startsWith('error') && !/auth/i.test(l)));
  check(errors.length === 0, `no script errors on the page (${errors.join(' | ')})`);
} catch (e) {
  check(false, `unexpected: ${e.stack}`);
} finally {
  if (process.env.HERALD_TEST_FRAMES) console.log(frames.join('\n'));
  if (failures.length) console.log(`page console:\n${logs.slice(-40).join('\n')}`);
  if (browser) await browser.close();
  const code = await stopProcess(server.proc);
  check(code === 0, `the server stops cleanly (${code}): ${code === 0 ? '' : serverOut.slice(-2000)}`);
  check(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(serverOut), `no sanitizer report: ${serverOut.slice(-2000)}`);
  if (!process.env.HERALD_TEST_KEEP) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}
console.log(`${passed()} passed, ${failures.length} failed (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
process.exit(failures.length ? 1 : 0);
