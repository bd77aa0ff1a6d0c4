/*
 * Consistency check (not a benchmark): can a client see a state that no
 * commit produced?
 *
 * Every mutation sets `updatedAt = k` on the same --docs documents at once
 * (one commit). One watcher connection subscribes to each of them with
 * `get`, and to --heavy queries that scan --filler other documents to find
 * the same ones (slow to re-run, small results). Every commit changes every
 * subscription, so after every update frame all the watcher's copies must
 * show the same k (SPEC §4: everything a commit changes for one connection
 * arrives in one message; a client that falls behind skips states but
 * never sees a torn one), versions must grow, and a frame's version must be
 * that of the state it shows.
 *
 * The writer sends --rate mutations/s on one WebSocket whatever the acks
 * (open loop), so that the writer thread can commit the next group while
 * the event loop is still re-running the subscriptions of the last one.
 * --stall N makes the watcher stop reading for N ms now and then, so that
 * the server merges its updates and later sends whole results.
 *
 * node repro_torn.mjs [--herald build-release/herald] [--seconds 8] [--stall 2500 --server-args "--max-outbound 4096"]
 * Exit status 1 if a torn or mislabelled frame was seen.
 */
import { closeAll, now, openMany, openWriter, parseArgs, sleep, startServer } from './lib.mjs';

const o = parseArgs(process.argv.slice(2), {
  herald: 'build-release/herald',
  data: 'build-release/bench-live-repro',
  port: 3296,
  docs: 20,
  heavy: 0,
  filler: 2000,
  rate: 1000, // mutations/s, open loop
  seconds: 8,
  stall: 0,
  serverCores: '0',
  serverArgs: '', // e.g. "--max-outbound 4096": a client falls behind sooner
});

const srv = await startServer({ herald: o.herald, dataDir: o.data, port: o.port, core: o.serverCores, extra: o.serverArgs ? o.serverArgs.split(' ') : [] });
const guard = setTimeout(() => {
  console.log(`repro_torn: no progress after ${o.seconds + 60} s; server stderr: ${srv.stderr().slice(-1000)}`);
  srv.stop().then(() => process.exit(2));
}, (o.seconds + 60) * 1000);

const writer = await openWriter(srv.url, srv.key);
const insert = async (n, status) => {
  const ids = [];
  for (let i = 0; i < n; i += 1000) {
    const ops = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      ops.push({ op: 'insert', table: 'videos', value: { twitchId: String(j), title: `torn ${j}`, status } });
    ids.push(...(await writer.request({ type: 'mutate', ops })).value);
  }
  return ids;
};
const ids = await insert(o.docs, 'Watched');
if (o.heavy) await insert(o.filler, 'Filler');

/* The k a change shows: a document (get) or a list of the watched documents (heavy). */
const kOf = (ch) => {
  if (ch.value !== undefined) return Array.isArray(ch.value) ? ch.value[0].updatedAt : ch.value.updatedAt;
  const d = ch.diff;
  if (d.o) return d.o.s.updatedAt;
  if (d.a) return d.a.c[0][1].s.updatedAt;
  return Array.isArray(d.v) ? d.v[0].updatedAt : d.v.updatedAt;
};
const copy = new Map(); // subscription -> k the watcher holds
let lastVersion = 0, frames = 0, torn = 0, sameVersion = 0, mislabelled = 0, results = 0, values = 0, checking = false;
let offset = 0; // commit version - k
const examples = [];
const [watcher] = await openMany(srv.url, srv.key, 1, () => (data) => {
  const m = JSON.parse(data);
  if (m.type === 'result') {
    results++;
    return;
  }
  if (m.type !== 'update') {
    if (examples.length < 6) examples.push(`unexpected: ${String(data).slice(0, 200)}`);
    return;
  }
  frames++;
  let newest = -Infinity;
  for (const ch of m.changes) {
    const k = kOf(ch);
    copy.set(ch.id, k);
    newest = Math.max(newest, k);
    if (ch.value !== undefined) values++;
  }
  if (!checking) return;
  const note = (what) => examples.length < 6 && examples.push(`${what}: ${String(data).slice(0, 240)}`);
  if (m.version <= lastVersion) {
    sameVersion++;
    note(`version ${m.version} after ${lastVersion}`);
  }
  lastVersion = m.version;
  if (newest + offset !== m.version) {
    mislabelled++;
    note(`version ${m.version} but the newest state in it is version ${newest + offset}`);
  }
  const held = new Set(copy.values());
  if (held.size > 1) {
    torn++;
    note(`after version ${m.version} (${m.changes.length} changes) the watcher holds k = ${[...held].sort((a, b) => a - b).join(', ')}`);
  }
});
ids.forEach((id, i) => watcher.send(JSON.stringify({ type: 'sub', id: `d${i}`, query: { table: 'videos', get: id } })));
for (let i = 0; i < o.heavy; i++)
  watcher.send(JSON.stringify({ type: 'sub', id: `h${i}`, query: { table: 'videos', take: o.docs + i, filter: { eq: [{ field: 'status' }, 'Watched'] } } }));
while (results < o.docs + o.heavy) await sleep(5);

let k = 0;
const ops = (n) => ids.map((id) => ({ op: 'patch', id, value: { updatedAt: n } }));
const first = await writer.request({ type: 'mutate', ops: ops(++k) });
offset = first.version - k;
await sleep(300);
lastVersion = first.version;
checking = true;

const end = now() + o.seconds * 1000;
const staller = o.stall > 0 && setInterval(() => {
  watcher._socket.pause();
  setTimeout(() => watcher._socket.resume(), o.stall);
}, o.stall + 500);
let inflight = 0;
await new Promise((resolve) => {
  const start = now();
  let n = 0;
  const timer = setInterval(() => {
    const t = now();
    if (t >= end) {
      clearInterval(timer);
      const wait = setInterval(() => inflight === 0 && (clearInterval(wait), resolve()), 5);
      return;
    }
    for (const due = Math.floor(((t - start) * o.rate) / 1000); n < due && inflight < 5000; n++) {
      inflight++;
      writer.request({ type: 'mutate', ops: ops(++k) }).then(() => inflight--);
    }
  }, 1);
});
if (staller) clearInterval(staller);
await sleep(500 + o.stall);
console.log(`${k} commits, ${frames} update frames to the watcher (${o.docs} \`get\` + ${o.heavy} scanning subscriptions, ` +
  `${values} whole-value changes): ${torn} left it holding a mix of commits, ${sameVersion} did not grow the version, ` +
  `${mislabelled} carried a version other than that of the state they show.`);
for (const e of examples) console.log(`  ${e}`);
await closeAll([watcher, writer.ws]);
await srv.stop();
clearTimeout(guard);
process.exit(torn || sameVersion || mislabelled ? 1 : 0);
