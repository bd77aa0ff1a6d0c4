/*
 * The official `convex` npm client (pinned in package.json), unmodified,
 * against Herald: ConvexHttpClient and ConvexClient over the sync protocol
 * at /api/<version>/sync (docs/convex-clients.md). Also a few frames sent
 * by hand where the client's own timing cannot be relied on: a mutation
 * re-sent with the same session and request id, a token that expires, the
 * Ping, a WebSocket path that is not an endpoint.
 *
 *   node tests/js/test_convex.mjs path/to/herald path/to/source
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { checker, freePort, importOrSkip, startHerald, stopProcess } from './lib.mjs';

const [{ ConvexClient, ConvexHttpClient }, { ConvexError }, { WebSocket }] = await importOrSkip([
  'convex/browser',
  'convex/values',
  'ws',
]);
const [herald, root] = process.argv.slice(2);
const { check: record, failures, passed } = checker();
/* A step that never ends fails the test here, naming the last check that passed (a
 * mutation whose Transition never came would otherwise wait for the suite's timeout). */
let lastCheck = 'the start';
const check = (cond, what) => {
  lastCheck = what;
  return record(cond, what);
};
setTimeout(() => {
  console.log(`FAIL: stuck for 150 s after: ${lastCheck}`);
  console.log(`${passed()} passed, ${failures.length + 1} failed`);
  process.exit(1);
}, 150000).unref();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Waits until cond() holds (polling), or the time is up; resolves with whether it held. */
async function until(cond, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

/* ---- a small app: counters, jobs, an echo, identity; and a provider of its own ---- */

const work = mkdtempSync(join(tmpdir(), 'herald-convex-'));
const app = join(work, 'app');
mkdirSync(join(app, 'functions'), { recursive: true });
writeFileSync(
  join(app, 'schema.ts'),
  `import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  counters: defineTable({ name: v.string(), n: v.number() }).index("by_name", ["name"]),
  jobs: defineTable({ jobId: v.string(), progress: v.number() }).index("by_job", ["jobId"]),
});
`,
);
writeFileSync(
  join(app, 'functions', 'counters.lua'),
  `local function find(ctx, name)
  return ctx.db:query("counters"):withIndex("by_name", function(q) return q:eq("name", name) end):first()
end
local M = {}
M.get = herald.query{args = {name = v.string()}, handler = function(ctx, args)
  local c = find(ctx, args.name)
  return c and c.n or 0
end}
M.inc = herald.mutation{args = {name = v.string()}, handler = function(ctx, args)
  local c = find(ctx, args.name)
  if c then ctx.db:patch(c._id, {n = c.n + 1}) return c.n + 1 end
  ctx.db:insert("counters", {name = args.name, n = 1})
  return 1
end}
M.echo = herald.query{handler = function(ctx, args) return args end}
M.whoami = herald.query{handler = function(ctx)
  local u = ctx.auth:getUserIdentity()
  return u and u.subject or nil
end}
M.mine = herald.mutation{args = {}, handler = function(ctx)
  local u = ctx.auth:getUserIdentity()
  if not u then herald.error{code = "UNAUTHENTICATED", message = "sign in first"} end
  return u.subject
end}
M.secret = herald.internalQuery{handler = function() return "for the admin" end}
M.accents = herald.query{handler = function() return {["café"] = 1} end}
M.accentsMut = herald.mutation{handler = function() return {["café"] = 1} end}
M.bump = herald.action{args = {name = v.string()}, handler = function(ctx, args)
  local n = ctx:runMutation("counters:inc", args)
  return {n = n, seen = ctx:runQuery("counters:get", args)}
end}
M.refuse = herald.action{handler = function(ctx)
  herald.error{code = "NOPE", message = "the action said no"}
end}
return M
`,
);
writeFileSync(
  join(app, 'functions', 'jobs.lua'),
  `local M = {}
M.get = herald.query{args = {jobId = v.string()}, handler = function(ctx, args)
  return ctx.db:query("jobs"):withIndex("by_job", function(q) return q:eq("jobId", args.jobId) end):first()
end}
M.set = herald.mutation{args = {jobId = v.string(), progress = v.number()}, handler = function(ctx, args)
  if not ctx.auth:isAdmin() then herald.error{code = "FORBIDDEN", message = "workers only"} end
  local j = ctx.db:query("jobs"):withIndex("by_job", function(q) return q:eq("jobId", args.jobId) end):first()
  if j then ctx.db:patch(j._id, {progress = args.progress}) else
    ctx.db:insert("jobs", {jobId = args.jobId, progress = args.progress}) end
end}
return M
`,
);
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ISSUER = 'https://auth.herald.test/';
const AUDIENCE = 'convex-test';
writeFileSync(
  join(app, 'jwks.json'),
  JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }] }),
);
writeFileSync(
  join(app, 'auth.config.json'),
  JSON.stringify({ providers: [{ issuer: ISSUER, audience: AUDIENCE, jwks: 'jwks.json', leeway: 0 }] }),
);
const b64u = (x) => Buffer.from(x).toString('base64url');
function token(subject, ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64u(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'k1' }));
  const body = b64u(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, sub: subject, iat: now, exp: now + ttl }));
  const sig = sign('RSA-SHA256', Buffer.from(`${head}.${body}`), privateKey).toString('base64url');
  return `${head}.${body}.${sig}`;
}

const data = join(work, 'data');
const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const serveArgs = ['--data', data, '--app', app, 'serve', '--port', String(port), '--idle-timeout', '8'];
let server = await startHerald(herald, serveArgs);
const key = server.key;

/* Raw frames over the sync endpoint. */
function rawSync() {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/api/1.48.0/sync`);
  const frames = [];
  ws.on('message', (d) => frames.push(JSON.parse(String(d))));
  const opened = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  return { ws, frames, opened, send: (m) => ws.send(JSON.stringify(m)) };
}

try {
  /* ---- ConvexHttpClient ---- */
  const http = new ConvexHttpClient(url);
  check((await http.query('counters:get', { name: 'a' })) === 0, 'http: a query');
  check((await http.mutation('counters:inc', { name: 'a' })) === 1, 'http: a mutation');
  check((await http.mutation('counters.js:inc', { name: 'a' })) === 2, 'http: a path with .js');
  const odd = { big: 1234567890123n, raw: new Uint8Array([1, 2, 250]).buffer, nan: NaN, neg: -0, list: [1, 'x', null] };
  const back = await http.query('counters:echo', odd);
  check(
    back.big === 1234567890123n && new Uint8Array(back.raw).join() === '1,2,250' && Number.isNaN(back.nan) &&
      Object.is(back.neg, -0) && JSON.stringify(back.list) === '[1,"x",null]',
    `http: Convex values both ways (${JSON.stringify(back, (k, v) => (typeof v === 'bigint' ? `${v}n` : v))})`,
  );
  const viaHttp = await http.action('counters:bump', { name: 'http-act' });
  check(viaHttp.n === 1 && viaHttp.seen === 1, `http: an action (${JSON.stringify(viaHttp)})`);
  try {
    await http.mutation('counters:mine', {});
    check(false, 'http: a ConvexError is thrown');
  } catch (e) {
    check(e instanceof ConvexError && e.data?.code === 'UNAUTHENTICATED', `http: ConvexError with data (${e})`);
  }
  try {
    await http.query('counters:nothing', {});
    check(false, 'http: an unknown function fails');
  } catch (e) {
    check(!(e instanceof ConvexError) && /counters:nothing/.test(e.message), `http: unknown function (${e.message})`);
  }
  try {
    await http.query('counters:get', { name: 5 });
    check(false, 'http: wrong arguments fail');
  } catch (e) {
    check(/args\.name/.test(e.message), `http: a validation error names the argument (${e.message})`);
  }
  try {
    await http.query('counters:secret', {});
    check(false, 'http: an internal function is hidden');
  } catch (e) {
    check(/secret/.test(e.message), `http: internal function without the admin key (${e.message})`);
  }
  try {
    await http.query('counters:accents', {});
    check(false, 'http: a field name the client cannot read is an error');
  } catch (e) {
    check(/field name/.test(e.message), `http: a field name the client cannot read (${e.message})`);
  }
  http.setAdminAuth(key);
  check((await http.query('counters:secret', {})) === 'for the admin', 'http: setAdminAuth sends the admin key');
  http.setAuth(token('ada'));
  check((await http.mutation('counters:mine', {})) === 'ada', 'http: Bearer JWT as the user');
  http.setAuth('not.a.token');
  try {
    await http.query('counters:whoami', {});
    check(false, 'http: a bad token is refused');
  } catch (e) {
    check(/token|signature|JWT/i.test(e.message), `http: a bad token is refused (${e.message})`);
  }
  http.clearAuth();
  /* Herald's own shape keeps working, and a malformed Convex request is a 400. */
  const post = (path, body) =>
    fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  let r = await post('/api/query', { path: 'counters:get', args: { name: 'a' } });
  let j = await r.json();
  check(r.status === 200 && j.status === 'success' && j.value === 2, `http: Herald's own shape (${r.status})`);
  r = await post('/api/query', { path: 'counters:get', format: 'convex_encoded_json', args: [1, 2] });
  check(r.status === 400, `http: args not [object] is the client's mistake (${r.status})`);
  r = await post('/api/mutation', { path: 'counters:mine', format: 'convex_encoded_json', args: [{}] });
  j = await r.json();
  check(r.status === 560 && j.errorData?.code === 'UNAUTHENTICATED' && Array.isArray(j.logLines),
    `http: a function error is 560 with errorData and logLines (${r.status})`);

  /* ---- ConvexClient over the sync protocol ---- */
  const worker = new ConvexHttpClient(url);
  worker.setAdminAuth(key);
  await worker.mutation('jobs:set', { jobId: 'j1', progress: 0 });
  const client = new ConvexClient(url);
  const progress = [];
  client.onUpdate('jobs:get', { jobId: 'j1' }, (job) => {
    if (job && progress.at(-1) !== job.progress) progress.push(job.progress);
  });
  check(await until(() => progress.length === 1), 'sync: the first result arrives');
  /* Each step once the subscriber has the previous one: updates the client has not
   * taken yet may merge into the newest (docs/protocol.md), so every step is awaited. */
  for (let p = 10; p <= 100; p += 10) {
    await worker.mutation('jobs:set', { jobId: 'j1', progress: p });
    await until(() => progress.at(-1) === p);
  }
  check(await until(() => progress.at(-1) === 100), 'sync: the last progress arrives');
  check(progress.join() === '0,10,20,30,40,50,60,70,80,90,100', `sync: every change of the job's progress (${progress})`);

  /* A mutation resolves after its writes are visible to the client's queries. */
  let count;
  client.onUpdate('counters:get', { name: 'v' }, (n) => (count = n));
  check(await until(() => count === 0), 'sync: counter subscribed');
  for (let i = 1; i <= 3; i++) {
    const got = await client.mutation('counters:inc', { name: 'v' });
    check(got === i && count === i, `sync: mutation ${i} resolved with its write visible (result ${got}, query ${count})`);
  }
  try {
    await client.mutation('counters:mine', {});
    check(false, 'sync: a ConvexError rejects the mutation');
  } catch (e) {
    check(e instanceof ConvexError && e.data?.code === 'UNAUTHENTICATED', `sync: ConvexError with data (${e})`);
  }
  let failed;
  client.onUpdate('counters:nothing', {}, () => {}, (e) => (failed = e));
  check(await until(() => failed), `sync: a failing query reaches onError (${failed?.message})`);
  let accents;
  client.onUpdate('counters:accents', {}, () => {}, (e) => (accents = e));
  check(await until(() => accents), `sync: a value the client cannot read is a QueryFailed (${accents?.message})`);
  try {
    await client.mutation('counters:accentsMut', {});
    check(false, 'sync: a mutation result the client cannot read is an error');
  } catch (e) {
    check(/committed.*field name/.test(e.message), `sync: a mutation result the client cannot read (${e.message})`);
  }
  const acted = await client.action('counters:bump', { name: 'act' });
  check(acted.n === 1 && acted.seen === 1, `sync: an action runs a mutation and a query (${JSON.stringify(acted)})`);
  try {
    await client.action('counters:refuse', {});
    check(false, 'sync: a failing action throws');
  } catch (e) {
    check(e instanceof ConvexError && e.data?.code === 'NOPE', `sync: an action's ConvexError with data (${e})`);
  }
  try {
    await client.action('counters:get', { name: 'v' });
    check(false, 'sync: a query called as an action is refused');
  } catch (e) {
    check(/query/.test(e.message), `sync: a query is no action (${e.message})`);
  }

  /* Auth: setAuth flips the identity; a token about to expire is refreshed. */
  let who = 'unset';
  const authChanges = [];
  const fetches = [];
  client.onUpdate('counters:whoami', {}, (w) => (who = w));
  check(await until(() => who === null), 'sync: anonymous first');
  client.setAuth(
    async ({ forceRefreshToken }) => {
      fetches.push(forceRefreshToken);
      return token('grace', fetches.length === 1 ? 4 : 3600);
    },
    (ok) => authChanges.push(ok),
  );
  check(await until(() => authChanges.includes(true)), `sync: the token is confirmed (${authChanges})`);
  check(await until(() => who === 'grace'), `sync: queries re-run as the user (${who})`);
  check(await until(() => fetches.length >= 2, 10000), `sync: a fresh token is fetched before or at expiry (${fetches})`);
  await sleep(5000); /* past the first token's expiry */
  check((await client.mutation('counters:mine', {})) === 'grace', 'sync: still signed in after the first token expired');
  check(who === 'grace', `sync: the user's query did not flip (${who})`);

  /* A server restart in the middle: reconnect, re-subscribe, no mutation twice. */
  let restarted;
  client.onUpdate('counters:get', { name: 'r' }, (n) => (restarted = n));
  check(await until(() => restarted === 0), 'sync: subscribed before the restart');
  await stopProcess(server.proc);
  const during = [1, 2, 3].map(() => client.mutation('counters:inc', { name: 'r' }));
  await sleep(300);
  server = await startHerald(herald, serveArgs);
  const results = await Promise.all(during);
  check(results.sort().join() === '1,2,3', `sync: mutations sent while down are applied after (${results})`);
  check(await until(() => restarted === 3, 10000), `sync: the subscription is back and current (${restarted})`);
  check((await http.query('counters:get', { name: 'r' })) === 3, 'sync: each mutation applied once');
  await client.close();

  /* The same mutation re-sent on a new socket of the same session: applied once. */
  const session = '9f1c2d3e-0000-4000-8000-000000000001';
  const inc = { type: 'Mutation', requestId: 0, udfPath: 'counters:inc', args: [{ name: 'd' }] };
  const answers = [];
  for (let n = 0; n < 2; n++) {
    const s = rawSync();
    await s.opened;
    s.send({ type: 'Connect', sessionId: session, connectionCount: n, lastCloseReason: n ? 'x' : 'InitialConnect', clientTs: Date.now() });
    s.send({ type: 'ModifyQuerySet', baseVersion: 0, newVersion: 1, modifications: [] });
    s.send(inc);
    check(await until(() => s.frames.some((f) => f.type === 'MutationResponse')), `raw: answer ${n}`);
    const resp = s.frames.find((f) => f.type === 'MutationResponse');
    answers.push(resp);
    const i = s.frames.indexOf(resp);
    check(s.frames[0].type === 'Transition' && s.frames[0].startVersion.querySet === 0 &&
      s.frames[0].startVersion.ts === 'AAAAAAAAAAA=', 'raw: the first Transition starts at 0');
    check(await until(() => s.frames.slice(i + 1).some((f) => f.type === 'Transition' && f.endVersion.ts >= resp.ts)),
      'raw: a Transition reaching the commit follows the MutationResponse');
    s.ws.close();
  }
  check(answers[0].success && answers[1].success && answers[0].result === 1 && answers[1].result === 1 &&
    answers[0].ts === answers[1].ts, `raw: the re-sent mutation gets the first answer (${JSON.stringify(answers)})`);
  check((await http.query('counters:get', { name: 'd' })) === 1, 'raw: and ran once');

  /* A token that expires: AuthError (the client fetches a new one), queries re-run signed out. */
  {
    const s = rawSync();
    await s.opened;
    s.send({ type: 'Connect', sessionId: 'expiry', connectionCount: 0, lastCloseReason: 'InitialConnect', clientTs: Date.now() });
    s.send({ type: 'Authenticate', baseVersion: 0, tokenType: 'User', value: token('short', 2) });
    s.send({ type: 'ModifyQuerySet', baseVersion: 0, newVersion: 1,
      modifications: [{ type: 'Add', queryId: 0, udfPath: 'counters:whoami', args: [{}] }] });
    const value = () => s.frames.filter((f) => f.type === 'Transition').flatMap((f) => f.modifications)
      .filter((m) => m.type === 'QueryUpdated').map((m) => m.value);
    check(await until(() => value().includes('short')), 'raw: signed in');
    const t = s.frames.find((f) => f.type === 'Transition' && f.endVersion.identity === 1);
    check(t, 'raw: the Transition after Authenticate bumps identity to 1');
    check(await until(() => s.frames.some((f) => f.type === 'AuthError'), 6000), 'raw: AuthError when the token expires');
    const ae = s.frames.find((f) => f.type === 'AuthError');
    check(ae?.baseVersion === 0 && ae?.authUpdateAttempted === false, `raw: AuthError's fields (${JSON.stringify(ae)})`);
    check(await until(() => value().at(-1) === null), 'raw: queries re-run signed out');
    /* A bad token: AuthError for that attempt. */
    s.send({ type: 'Authenticate', baseVersion: 1, tokenType: 'User', value: 'x.y.z' });
    check(await until(() => s.frames.filter((f) => f.type === 'AuthError').some((f) => f.authUpdateAttempted && f.baseVersion === 1)),
      'raw: a bad token gets AuthError with authUpdateAttempted');
    /* Pings while nothing else happens (at a quarter of --idle-timeout 8 here). */
    const before = s.frames.length;
    check(await until(() => s.frames.slice(before).some((f) => f.type === 'Ping'), 5000), 'raw: Ping when quiet');
    /* A version that does not follow: the connection closes with a reason, for a reconnect. */
    const closed = new Promise((resolve) => s.ws.on('close', (code, reason) => resolve(String(reason))));
    s.send({ type: 'ModifyQuerySet', baseVersion: 7, newVersion: 8, modifications: [] });
    const reason = await Promise.race([closed, sleep(3000).then(() => 'still open')]);
    check(/version/.test(reason), `raw: a wrong baseVersion closes the socket (${reason})`);
  }

  /* A client that saw a newer state than the server holds is told to stop (FatalError). */
  {
    const s = rawSync();
    await s.opened;
    const closed = new Promise((resolve) => s.ws.on('close', resolve));
    s.send({ type: 'Connect', sessionId: 'ahead', connectionCount: 3, lastCloseReason: 'x', clientTs: Date.now(),
      maxObservedTimestamp: '////////fwA=' });
    await Promise.race([closed, sleep(3000)]);
    check(s.frames.some((f) => f.type === 'FatalError' && /newer state/.test(f.error)),
      `raw: a maxObservedTimestamp ahead of the server gets FatalError (${JSON.stringify(s.frames)})`);
  }

  /* A JWT of an example app's provider: the demo's sign-in (examples/demo, web-demo/demo-auth.js). */
  {
    const { mintDemoToken } = await import(pathToFileURL(join(resolve(root), 'web-demo', 'demo-auth.js')).href);
    const demoPort = await freePort();
    const demo = await startHerald(herald, ['--data', join(work, 'demo-data'), '--app', join(root, 'examples', 'demo'),
      'serve', '--port', String(demoPort)]);
    const dc = new ConvexClient(`http://127.0.0.1:${demoPort}`);
    try {
      try {
        await dc.mutation('videos:create', { twitchId: 'c1', title: 'anonymous' });
        check(false, 'demo: signed out, creating a job is refused');
      } catch (e) {
        check(e.data?.code === 'UNAUTHENTICATED', `demo: signed out, creating a job is refused (${e.message})`);
      }
      const ok = [];
      dc.setAuth(async () => (await mintDemoToken('Ada Lovelace')).token, (v) => ok.push(v));
      check(await until(() => ok.includes(true)), `demo: the demo provider's token is accepted (${ok})`);
      const id = await dc.mutation('videos:create', { twitchId: 'c1', title: 'signed in' });
      check(typeof id === 'string' && id.length > 0, `demo: signed in, the job is created (${id})`);
    } finally {
      await dc.close();
      const code = await stopProcess(demo.proc);
      check(code === 0, `demo: the server stops cleanly (${code})`);
    }
  }

  /* Only /ws and /api/<version>/sync take WebSockets. */
  {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/elsewhere`);
    const status = await new Promise((resolve) => {
      ws.on('unexpected-response', (req, res) => resolve(res.statusCode));
      ws.on('open', () => resolve('open'));
      ws.on('error', () => resolve('error'));
    });
    check(status === 404, `other WebSocket paths are refused (${status})`);
  }
} catch (e) {
  check(false, `unexpected: ${e.stack}`);
} finally {
  const code = await stopProcess(server.proc);
  check(code === 0, `the server stops cleanly (${code}): ${code === 0 ? '' : server.output().slice(-2000)}`);
  rmSync(work, { recursive: true, force: true });
}
console.log(`${passed()} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
