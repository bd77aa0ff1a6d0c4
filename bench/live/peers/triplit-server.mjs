/*
 * Starts a Triplit server (the npm package @triplit/server, installed by
 * run.sh into a scratch folder outside the repository) for the peer
 * benchmarks: bound to 127.0.0.1, one `videos` collection in its schema,
 * durable storage on disk, logging at WARN. Prints "listening on ..." once
 * it accepts connections; SIGTERM ends it.
 *
 * The setup is the one createServer() of @triplit/server does (Hono, its
 * node-server and node-ws adapters around createTriplitHonoServer), written
 * out only to pass a host name: createServer() listens on every address.
 *
 *   node triplit-server.mjs --npm DIR --data DIR --port N --secret S [--storage lmdb|lmdb-sync|memory]
 *
 * Storage:
 *   lmdb       Triplit's own `createTriplitStorageProvider('lmdb')`: lmdb-js
 *              with its defaults (overlappingSync: a commit is visible and
 *              acknowledged before its fsync ends; the fsync follows in the
 *              background).
 *   lmdb-sync  the same store opened with overlappingSync off: each commit
 *              returns once fsynced, as Herald's do.
 *   memory     Triplit's default, not durable (for comparison only).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const o = { npm: '', data: '', port: 3391, secret: '', storage: 'lmdb', project: 'herald-bench' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in o)) throw new Error(`unknown option ${process.argv[i]}`);
  o[k] = typeof o[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
if (!o.npm || !o.secret) throw new Error('--npm and --secret are needed');

/* Packages come from the scratch folder, not from the repository. */
const req = createRequire(join(resolve(o.npm), 'package.json'));
const load = (name) => import(pathToFileURL(req.resolve(name)).href);

const { createTriplitHonoServer } = await load('@triplit/server/hono');
const { createTriplitStorageProvider } = await load('@triplit/server');
const { Schema: S } = await load('@triplit/db');
const { Hono } = await load('hono');
const { serve } = await load('@hono/node-server');
const { createNodeWebSocket } = await load('@hono/node-ws');

let storage;
if (o.storage !== 'memory') {
  rmSync(o.data, { recursive: true, force: true });
  mkdirSync(o.data, { recursive: true });
  process.env.LOCAL_DATABASE_URL = join(resolve(o.data), 'app.db');
}
if (o.storage === 'lmdb' || o.storage === 'memory') {
  storage = await createTriplitStorageProvider(o.storage);
} else if (o.storage === 'lmdb-sync') {
  const { LmdbKVStore } = await load('@triplit/db/storage/lmdb');
  const lmdb = req('lmdb');
  storage = new LmdbKVStore(lmdb.open(process.env.LOCAL_DATABASE_URL, { overlappingSync: false }));
} else {
  throw new Error(`unknown storage ${o.storage}`);
}

/* The fields of Herald's videos table that the benchmarks write (examples/twitch-jobs/schema.ts). */
const collections = S.Collections({
  videos: {
    schema: S.Schema({
      id: S.Id(),
      twitchId: S.String(),
      title: S.String(),
      status: S.String(),
      jobId: S.Optional(S.String()),
      progressPercentage: S.Optional(S.Number()),
      currentStage: S.Optional(S.String()),
      updatedAt: S.Optional(S.Number()),
    }),
  },
});

/* WARN and above to stderr; the default (INFO) prints every message sent and received. */
const quiet = {
  log(r) {
    if (r.level === 'WARN' || r.level === 'ERROR' || r.level === 'FATAL') console.error(`[${r.level}] [${r.context ?? '*'}] ${r.message}`, r.attributes ?? '');
  },
  startSpan: (name, context, attributes) => ({ name, context, attributes, startTime: Date.now() }),
  endSpan() {},
  recordMetric() {},
};

let app = new Hono();
const { injectWebSocket, upgradeWebSocket } = createNodeWebSocket({ app });
app = await createTriplitHonoServer(
  { storage, jwtSecret: o.secret, projectId: o.project, dbOptions: { schema: { collections } }, logHandler: quiet },
  upgradeWebSocket,
  (e) => console.error(e),
  app,
);
const server = serve({ fetch: app.fetch, port: o.port, hostname: '127.0.0.1' }, (info) => {
  console.log(`listening on ${info.address}:${info.port} (storage: ${o.storage})`);
});
injectWebSocket(server);
process.on('SIGTERM', () => {
  server.close();
  process.exit(0);
});
