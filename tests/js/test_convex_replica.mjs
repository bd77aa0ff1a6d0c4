/*
 * The official `convex` client, unmodified, against a replica
 * (docs/replication.md): ConvexClient over the sync protocol subscribes on
 * the replica and sends its mutations there; the replica forwards them to
 * the primary, and each mutation resolves only once its write is in the
 * client's subscription (read your writes through a forwarded mutation).
 * ConvexHttpClient's mutations through the replica work too, and a write's
 * failure on the primary (a validator) reaches the client as it would on
 * one node.
 *
 * A nats-server of its own with JetStream on a free loopback port, a
 * primary and a replica; skipped without nats-server or the npm packages.
 *
 * Run as: node test_convex_replica.mjs HERALD_BINARY SOURCE_ROOT
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checker, freePort, importOrSkip, startHerald, stopProcess } from './lib.mjs';

const [{ ConvexClient, ConvexHttpClient }] = await importOrSkip(['convex/browser']);
const [herald] = process.argv.slice(2);
const { check, failures, passed } = checker();

if (spawnSync('nats-server', ['--version']).error) {
  console.log('nats-server is missing: skipped');
  process.exit(77);
}

const until = async (cond, ms = 10000) => {
  const t0 = Date.now();
  while (!cond() && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

/* Resolves with whether something listens on `port` within 30 s. */
const listening = async (port) => {
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise((resolve) => {
      const s = createConnection({ port, host: '127.0.0.1' }, () => {
        s.end();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
};

const work = mkdtempSync(join(tmpdir(), 'herald-convex-replica-'));
const app = join(work, 'app');
mkdirSync(join(app, 'functions'), { recursive: true });
writeFileSync(join(app, 'schema.ts'), `import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
export default defineSchema({
  notes: defineTable({ text: v.string(), n: v.number() }).index("by_n", ["n"]),
});
`);
writeFileSync(join(app, 'functions', 'notes.lua'), `local M = {}
M.add = herald.mutation{args = {text = v.string(), n = v.number()}, handler = function(ctx, a)
  return ctx.db:insert("notes", {text = a.text, n = a.n})
end}
M.list = herald.query{args = {}, handler = function(ctx)
  return ctx.db:query("notes"):withIndex("by_n"):collect()
end}
return M
`);

const natsPort = await freePort();
const nats = spawn('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(natsPort), '-sd', join(work, 'js')],
  { stdio: 'ignore' });
const nodes = [];
try {
  check(await listening(natsPort), 'the nats-server listens');
  const common = ['--replicate', `nats://127.0.0.1:${natsPort}`, '--cluster', 'convex', '--lease', '2'];
  const start = async (name) => {
    const port = await freePort();
    const h = await startHerald(herald, ['--data', join(work, name), '--app', app, '--no-sync', 'serve',
      '--port', String(port), '--node', name, ...common]);
    nodes.push(h);
    return `http://127.0.0.1:${port}`;
  };
  const health = async (url) => (await (await fetch(`${url}/healthz`)).json()).replication;
  const waitRole = async (url, role) => {
    for (let i = 0; i < 100; i++) {
      if ((await health(url))?.role === role) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };
  const primary = await start('p');
  check(await waitRole(primary, 'primary'), 'p becomes the primary');
  const replica = await start('r');
  check(await waitRole(replica, 'replica'), 'r is a replica');

  /* ConvexClient on the replica: a subscription, then mutations through it. */
  const client = new ConvexClient(replica);
  let notes = null;
  client.onUpdate('notes:list', {}, (v) => { notes = v; });
  check(await until(() => notes !== null), 'sync: the first result arrives from the replica');
  for (let i = 1; i <= 5; i++) {
    const id = await client.mutation('notes:add', { text: `note ${i}`, n: i });
    check(notes.some((d) => d._id === id),
      `sync: mutation ${i}, forwarded to the primary, resolves with its write in the replica's subscription`);
  }
  try {
    await client.mutation('notes:add', { text: 7, n: 8 });
    check(false, 'sync: an argument the validator refuses rejects the mutation');
  } catch (e) {
    check(/text|string/i.test(String(e)), `sync: the primary's validation error reaches the client (${e})`);
  }

  /* ConvexHttpClient through the replica, read back at once on the replica. */
  const http = new ConvexHttpClient(replica);
  const id = await http.mutation('notes:add', { text: 'by http', n: 6 });
  const listed = await http.query('notes:list', {});
  check(listed.some((d) => d._id === id), 'http: a mutation through the replica is read back there at once');
  check(await until(() => notes.length === 6), `sync: the subscription holds all six notes (${notes.length})`);
  const onPrimary = await new ConvexHttpClient(primary).query('notes:list', {});
  check(JSON.stringify(onPrimary) === JSON.stringify(notes), 'the replica\'s result equals the primary\'s');
  await client.close();
} catch (e) {
  check(false, `exception: ${e.stack || e}`);
} finally {
  for (const h of nodes) await stopProcess(h.proc);
  nats.kill('SIGTERM');
  await new Promise((r) => (nats.exitCode !== null ? r() : nats.on('exit', r)));
  rmSync(work, { recursive: true, force: true });
}
console.log(`convex_replica: ${passed()} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
