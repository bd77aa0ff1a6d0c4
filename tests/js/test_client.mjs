/*
 * The JavaScript client (web-demo/herald.js) against the real server:
 * a randomised test in which, after every commit, each subscription's
 * copy (kept current by applying diffs) must equal the query re-run from
 * scratch; then a server restart, after which the client reconnects,
 * re-subscribes and sees current results again.
 *
 * Run as: node test_client.mjs <herald> <source root>
 * Needs the `ws` package and the client as its npm package (herald-db-client,
 * installed from web-demo/ by npm ci in tests/js); exits 77 (skipped) without
 * them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { checker, freePort, importOrSkip, startHerald, stopProcess } from './lib.mjs';

const [{ WebSocket }, { connect }] = await importOrSkip(['ws', 'herald-db-client']);
const [herald, root] = process.argv.slice(2);

const { check, failures } = checker();

const startServer = (data, port) =>
  startHerald(herald, ['--data', data, '--app', join(root, 'examples', 'twitch-jobs'), 'serve', '--port', String(port)]);

/* xorshift: reproducible with HERALD_JS_SEED. */
let seed = BigInt(process.env.HERALD_JS_SEED ?? Date.now());
console.log(`seed ${seed}`);
function rand(n) {
  seed ^= seed << 13n; seed &= (1n << 64n) - 1n;
  seed ^= seed >> 7n;
  seed ^= seed << 17n; seed &= (1n << 64n) - 1n;
  return Number(seed % BigInt(n));
}

const statuses = ['Queued', 'Downloading', 'Transcribing', 'Completed', 'Failed'];
const queries = {
  all: { table: 'videos', index: 'by_created_at' },
  transcribing: { table: 'videos', index: 'by_status', range: [{ eq: ['status', 'Transcribing'] }] },
  newest3: { table: 'videos', index: 'by_created_at', order: 'desc', take: 3 },
  firstDone: { table: 'videos', index: 'by_status', range: [{ eq: ['status', 'Completed'] }], first: true },
  page: { table: 'videos', index: 'by_created_at', paginate: { numItems: 4, cursor: null } },
  filtered: { table: 'videos', filter: { gte: [{ field: 'progressPercentage' }, 50] } },
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herald-js-'));
  const port = await freePort();
  let { proc, key } = await startServer(join(dir, 'data'), port);
  const db = connect(`ws://127.0.0.1:${port}/ws`, { token: key, WebSocket });
  const copies = {};
  const unsubs = [];
  for (const [name, q] of Object.entries(queries)) {
    unsubs.push(db.subscribe(q, (value) => { copies[name] = value; }, (e) => check(false, `${name}: ${e.code} ${e.message}`)));
  }
  const ids = [];
  /* A live page keeps the end its first run fixed (its journal): the fresh run of
   * the page asks for that end, as the page's client would after a reconnect. */
  const journalOf = (q) => [...db.subs.values()].find((sub) => sub.request.query === q)?.journal;
  const compare = async (step) => {
    for (const [name, q] of Object.entries(queries)) {
      const end = q.paginate && journalOf(q);
      const { value } = await db.query(end ? { ...q, paginate: { ...q.paginate, endCursor: end } } : q);
      if (!isDeepStrictEqual(copies[name], value)) {
        check(false, `step ${step}: ${name} copy differs from a fresh run\n  copy:  ${JSON.stringify(copies[name])}\n  fresh: ${JSON.stringify(value)}`);
        return false;
      }
    }
    return true;
  };
  const steps = Number(process.env.HERALD_JS_STEPS ?? 300);
  for (let step = 0; step < steps && failures.length === 0; step++) {
    const ops = [];
    for (let k = 1 + rand(3); k > 0; k--) {
      const r = rand(10);
      if (r < 4 || ids.length < 3) {
        ops.push({ op: 'insert', table: 'videos', value: { twitchId: `t${step}-${k}`, title: `Video ${step}`, status: statuses[rand(5)], progressPercentage: rand(101), createdAt: rand(50) } });
      } else if (r < 8) {
        const value = { progressPercentage: rand(101) };
        if (rand(2)) value.status = statuses[rand(5)];
        if (rand(3) === 0) value.createdAt = rand(50);
        ops.push({ op: 'patch', id: ids[rand(ids.length)], value });
      } else {
        const [id] = ids.splice(rand(ids.length), 1);
        ops.push({ op: 'delete', id });
      }
    }
    try {
      const { value } = await db.mutate(ops);
      for (const id of value) if (id) ids.push(id);
    } catch (e) {
      check(false, `mutation failed: ${e.code} ${e.message}`);
    }
    /* The ack arrives after the updates: the copies must already be current. */
    if (!(await compare(step))) break;
  }
  console.log(`${steps} commits compared against fresh runs`);

  /* Functions by path: a live function subscription, mutations whose promise resolves
   * after their update, structured errors, and re-authentication in place. */
  const fdb = connect(`ws://127.0.0.1:${port}/ws`, { token: key, WebSocket });
  let job = 'unset';
  unsubs.push(fdb.subscribe('videos:getJobById', { jobId: 'fn-job' }, (value) => { job = value; },
    (e) => check(false, `getJobById: ${e.code} ${e.message}`)));
  for (let i = 0; job === 'unset' && i < 200; i++) await new Promise((r) => setTimeout(r, 50));
  check(job === null, `function subscription starts empty: ${JSON.stringify(job)}`);
  await fdb.mutation('videos:create', { twitchId: 'fn', title: 'Function video', jobId: 'fn-job' });
  check(job && job.twitchId === 'fn' && job.status === 'Queued', 'created job seen before the mutation resolved');
  await fdb.mutation('videos:updateJobProgress', { twitchId: 'fn', jobId: 'fn-job', progressPercentage: 42 });
  check(job.progressPercentage === 42, 'progress seen before the mutation resolved');
  try {
    await fdb.mutation('videos:retry', { twitchId: 'fn' });
    check(false, 'retry of a queued job must fail');
  } catch (e) {
    check(e.code === 'FunctionError' && e.data && e.data.code === 'NOT_RETRYABLE', `structured error: ${e.code} ${JSON.stringify(e.data)}`);
  }
  await fdb.setAuth(null);
  try {
    await fdb.mutation('videos:updateJobProgress', { twitchId: 'fn', jobId: 'fn-job', progressPercentage: 43 });
    check(false, 'progress without the worker key must fail');
  } catch (e) {
    check(e.data && e.data.code === 'FORBIDDEN', `signed out: ${e.code} ${JSON.stringify(e.data)}`);
  }
  try {
    await fdb.setAuth('not-a-valid-token');
    check(false, 'a bad token must be refused');
  } catch (e) {
    check(e.code === 'Unauthorized', `bad token refused: ${e.code}`);
  }
  await fdb.setAuth(key);
  await fdb.mutation('videos:updateJobProgress', { twitchId: 'fn', jobId: 'fn-job', progressPercentage: 44 });
  check(job.progressPercentage === 44, 'function subscription kept through re-authentication');

  /* Restart the server: the client reconnects, re-subscribes, and is current again. */
  check((await stopProcess(proc)) === 0, 'server stops cleanly');
  ({ proc } = await startServer(join(dir, 'data'), port));
  const deadline = Date.now() + 20000;
  let back = false;
  while (!back && Date.now() < deadline) {
    try {
      await db.mutate([{ op: 'insert', table: 'videos', value: { twitchId: 'after', title: 'After restart', status: 'Transcribing' } }]);
      back = true;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  check(back, 'the client reconnected after the restart');
  if (back) {
    await compare('after restart');
    check(copies.transcribing.some((d) => d.twitchId === 'after'), 'subscription live again after reconnect');
    await fdb.mutation('videos:updateJobProgress', { twitchId: 'fn', jobId: 'fn-job', progressPercentage: 45 });
    check(job.progressPercentage === 45, 'function subscription live again after reconnect');
  }
  for (const u of unsubs) u();
  db.close();
  fdb.close();
  await stopProcess(proc);
  rmSync(dir, { recursive: true, force: true });
  console.log(failures.length ? `js client: ${failures.length} failures` : 'js client: all passed');
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.log('FAIL:', e);
  process.exit(1);
});
