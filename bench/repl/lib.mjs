/*
 * Shared pieces of the replication benchmarks (bench/repl/run.sh): a NATS
 * cluster of three servers (bench/repl/nats.py), Herald nodes (a single
 * node, or a primary and its replicas) pinned to a core, WebSocket clients
 * of the native protocol, percentiles and markdown tables.
 *
 * One clock for everything timed: process.hrtime (monotonic) of the
 * generator process, which holds the writer and every subscriber, on the
 * primary and on the replicas alike.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');

async function loadWs() {
  for (const dir of [join(here, 'node_modules', 'ws'), join(root, 'bench', 'live', 'node_modules', 'ws'),
    join(root, 'tests', 'js', 'node_modules', 'ws')]) {
    if (existsSync(join(dir, 'wrapper.mjs'))) return (await import(pathToFileURL(join(dir, 'wrapper.mjs')))).WebSocket;
  }
  console.error('bench/repl: the ws package is missing: run `npm ci` in bench/repl');
  process.exit(2);
}
export const WebSocket = await loadWs();

export function now() {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function parseArgs(argv, defaults) {
  const o = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(k in o)) throw new Error(`unknown option ${a}`);
    if (typeof o[k] === 'boolean') o[k] = true;
    else if (typeof o[k] === 'number') o[k] = Number(argv[++i]);
    else o[k] = argv[++i];
  }
  return o;
}

/* ---- processes ---- */

export async function stopProcess(proc, exited, ms = 10000) {
  if (exited) return exited;
  const done = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), ms);
  const r = await done;
  clearTimeout(t);
  return r;
}

/*
 * Starts bench/repl/nats.py (three nats-servers with JetStream on loopback, in a
 * temporary folder); resolves with { urls, pids, stop }. `core`: a CPU list for them.
 */
export async function startNats({ core = '' } = {}) {
  const args = [join(here, 'nats.py')];
  if (core) args.push('--core', core);
  const proc = spawn('python3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stderr.on('data', (d) => (err = (err + d).slice(-5000)));
  const line = await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`NATS did not start: ${err}`)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) {
        clearTimeout(t);
        res(out.split('\n')[0]);
      }
    });
    proc.on('exit', (code) => rej(new Error(`nats.py exited ${code}: ${err}`)));
  });
  proc.removeAllListeners('exit');
  let exited = null;
  proc.on('exit', (code, sig) => (exited = { code, sig }));
  const [urls, pids] = line.trim().split(' ');
  return {
    urls,
    pids: pids.split(',').map(Number),
    async stop() {
      if (exited) return exited;
      const done = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
      proc.stdin.end(); // nats.py stops the servers and removes their folders
      const t = setTimeout(() => proc.kill('SIGTERM'), 20000);
      const r = await done;
      clearTimeout(t);
      return r;
    },
  };
}

/*
 * Starts one `herald serve` pinned to `core`, with a fresh data folder (`pre`:
 * herald's options before `serve`, such as --no-sync; `extra`: serve's). With
 * `replicate` (the NATS URLs) it joins cluster `cluster` as `node`, with `role`.
 * Resolves once it listens, with its admin key read from the data folder.
 */
export async function startNode({ herald, dataDir, port, core = '0', replicate = '', node = '', cluster = '', role = 'auto', extra = [], pre = [] }) {
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const args = ['-c', String(core), herald, '--data', dataDir, '--app', join(root, 'examples', 'twitch-jobs'), ...pre,
    'serve', '--port', String(port), '--max-connections', '200000', '--max-per-address', '200000'];
  if (replicate) args.push('--replicate', replicate, '--node', node, '--cluster', cluster, '--role', role);
  args.push(...extra);
  const proc = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  const keep = (s, d) => (s.length > 200000 ? s.slice(-100000) : s) + d;
  proc.stderr.on('data', (d) => (err = keep(err, d)));
  const key = await new Promise((res, rej) => {
    const t = setTimeout(() => rej(new Error(`herald ${node} did not start: ${out} ${err}`)), 90000);
    proc.stdout.on('data', (d) => {
      out = keep(out, d);
      if (out.includes('listening on')) {
        clearTimeout(t);
        res(readFileSync(join(dataDir, 'admin.key'), 'utf8').trim());
      }
    });
    proc.on('exit', (code) => rej(new Error(`herald ${node} exited ${code}: ${out} ${err}`)));
  });
  proc.stdout.removeAllListeners('data');
  proc.stdout.on('data', (d) => (out = keep(out, d)));
  proc.removeAllListeners('exit');
  let exited = null;
  proc.on('exit', (code, sig) => (exited = { code, sig }));
  return {
    proc, pid: proc.pid, key, port, node,
    url: `ws://127.0.0.1:${port}/ws`,
    log: () => out + err,
    exited: () => exited,
    stop: () => stopProcess(proc, exited),
  };
}

/* GET /healthz of a node: its JSON, or null. */
export async function health(port) {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/healthz`);
    return await r.json();
  } catch {
    return null;
  }
}

/* Waits until the node's /healthz says it has role `role` (and, for a replica, names a primary). */
export async function waitRole(port, role, ms = 60000) {
  const end = now() + ms;
  for (;;) {
    const h = await health(port);
    const rep = h && h.replication;
    if (rep && rep.role === role && (role !== 'replica' || rep.primary)) return rep;
    if (now() > end) throw new Error(`node on port ${port} is not ${role}: ${JSON.stringify(h)}`);
    await sleep(100);
  }
}

/* Waits until every replica's /healthz seq reaches `seq`. */
export async function waitSeq(ports, seq, ms = 60000) {
  const end = now() + ms;
  for (const p of ports) {
    for (;;) {
      const h = await health(p);
      if (h && h.replication && h.replication.seq >= seq) break;
      if (now() > end) throw new Error(`node on port ${p} stays at ${JSON.stringify(h)}, wanted seq ${seq}`);
      await sleep(50);
    }
  }
}

/*
 * A Herald topology for one run: `replicas` < 0 is a single node without
 * --replicate; otherwise a primary and `replicas` replicas (role replica) in a
 * cluster named afresh on the shared NATS `nats`; the primary on `primaryCore`,
 * the others on `core`. Resolves with
 * { primary, replicas: [...], stop }.
 */
let clusterCount = 0;
export async function startTopology({ herald, data, basePort, replicas, nats, core = '0', primaryCore = core, extra = [], pre = [] }) {
  const nodes = [];
  const stop = async () => {
    const out = [];
    for (const n of nodes.reverse()) out.push(await n.stop());
    return out;
  };
  try {
    if (replicas < 0) {
      nodes.push(await startNode({ herald, dataDir: join(data, 'single'), port: basePort, core, extra, pre }));
      return { primary: nodes[0], replicas: [], stop, nodes };
    }
    const cluster = `bench${process.pid}x${clusterCount++}`;
    const common = { herald, replicate: nats.urls, cluster, core, extra, pre };
    const primary = await startNode({ ...common, core: primaryCore, dataDir: join(data, 'p'), port: basePort, node: 'p', role: 'primary' });
    nodes.push(primary);
    await waitRole(basePort, 'primary');
    const reps = [];
    for (let i = 0; i < replicas; i++) {
      const r = await startNode({ ...common, dataDir: join(data, `r${i}`), port: basePort + 1 + i, node: `r${i}`, role: 'replica' });
      nodes.push(r);
      reps.push(r);
      await waitRole(r.port, 'replica');
    }
    return { primary, replicas: reps, stop, nodes, cluster };
  } catch (e) {
    await stop();
    throw e;
  }
}

/* ---- clients ---- */

/* Opens a WebSocket, signs in with the admin key, resolves with it; `onMessage(data)` gets every later message. */
export function openClient(url, key, onMessage, options = {}) {
  return new Promise((res, rej) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, ...options });
    let authed = false;
    ws.on('error', (e) => {
      if (!authed) rej(e);
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', id: 'a', token: key })));
    ws.on('message', (data) => {
      if (!authed) {
        const m = JSON.parse(data);
        if (m.type !== 'ack') return rej(new Error(`auth failed: ${data}`));
        authed = true;
        res(ws);
        return;
      }
      onMessage(data);
    });
  });
}

/* `n` clients, `wave` at a time; make(i) returns the onMessage of client i. */
export async function openMany(url, key, n, make, wave = 200) {
  const out = new Array(n);
  for (let i = 0; i < n; i += wave) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + wave); j++) batch.push(openClient(url, key, make(j)).then((ws) => (out[j] = ws)));
    await Promise.all(batch);
  }
  return out;
}

export function closeAll(list) {
  return Promise.all(list.filter(Boolean).map((ws) => new Promise((r) => {
    if (ws.readyState === 3) return r();
    ws.once('close', r);
    ws.terminate();
  })));
}

/* A connection that sends requests with fresh ids; request(msg) resolves with the answer. */
export async function openWriter(url, key) {
  const pending = new Map();
  let next = 0;
  const ws = await openClient(url, key, (data) => {
    const m = JSON.parse(data);
    const p = pending.get(m.id);
    if (p) {
      pending.delete(m.id);
      p(m);
    }
  });
  return {
    ws,
    request(msg) {
      const id = `w${next++}`;
      return new Promise((r) => {
        pending.set(id, r);
        ws.send(JSON.stringify({ ...msg, id }));
      });
    },
  };
}

/* Inserts `n` videos, 1,000 per mutation; resolves with their ids and the last commit version. */
export async function insertVideos(writer, n, tag = 'v') {
  const ids = [];
  let version = 0;
  for (let i = 0; i < n; i += 1000) {
    const ops = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      ops.push({ op: 'insert', table: 'videos', value: { twitchId: String(1900000000 + j), title: `${tag} video ${j}`, status: 'Queued', jobId: `job-${j}`, progressPercentage: 0, updatedAt: 0 } });
    const a = await writer.request({ type: 'mutate', ops });
    if (a.type !== 'ack') throw new Error(`insert failed: ${JSON.stringify(a)}`);
    ids.push(...a.value);
    version = a.version;
  }
  return { ids, version };
}

/* ---- measuring ---- */

/* Time on a CPU of every thread of a process, in ms. */
export function schedMs(pid) {
  let ns = 0;
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch { /* a thread that just ended */ }
    }
  } catch { /* the process ended */ }
  return ns / 1e6;
}

export function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/* Per-CPU busy ticks, to say how busy each core was during a window. */
export function cpuTicks() {
  return readFileSync('/proc/stat', 'utf8').split('\n').filter((l) => /^cpu\d/.test(l)).map((l) => {
    const f = l.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + f[4];
    return { busy: f.reduce((a, b) => a + b, 0) - idle, total: f.reduce((a, b) => a + b, 0) };
  });
}

export function cpuBusy(a, b) {
  return b.map((x, i) => `${Math.round((100 * (x.busy - a[i].busy)) / Math.max(1, x.total - a[i].total))}%`).join(' / ');
}

export const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export function sorted(arr, n = arr.length) {
  const a = Float64Array.from(arr.subarray ? arr.subarray(0, n) : arr.slice(0, n));
  a.sort();
  return a;
}

export const median = (arr) => percentile(sorted(arr.filter(Number.isFinite)), 50);

export function fmtInt(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-';
}

export function fmtMs(x) {
  if (!Number.isFinite(x)) return '-';
  return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US');
}

export function table(headers, rows) {
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/* A growable array of doubles. */
export class Samples {
  constructor(n = 1 << 16) {
    this.a = new Float64Array(n);
    this.n = 0;
  }
  push(x) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = x;
  }
  sorted() {
    return sorted(this.a, this.n);
  }
}
