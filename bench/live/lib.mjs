/*
 * Shared pieces of the live-server benchmarks: starting `herald serve`
 * pinned to one core, WebSocket clients, the server's CPU and memory from
 * /proc, percentiles and markdown tables.
 *
 * One clock for everything timed: process.hrtime (monotonic) of the
 * generator process, which holds both the writers and the watchers.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');

/* The `ws` package: bench/live/node_modules if installed there, else tests/js's. */
async function loadWs() {
  for (const dir of [join(here, 'node_modules', 'ws'), join(root, 'tests', 'js', 'node_modules', 'ws')]) {
    if (existsSync(join(dir, 'wrapper.mjs'))) return (await import(pathToFileURL(join(dir, 'wrapper.mjs')))).WebSocket;
  }
  console.error('bench/live: the ws package is missing: run `npm ci` in tests/js (or `npm install` in bench/live)');
  process.exit(2);
}
export const WebSocket = await loadWs();

/* Milliseconds on the monotonic clock. */
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

/* ---- the server ---- */

/* Stops a child with SIGTERM (SIGKILL after 10 s); resolves with how it exited. */
export async function stopProcess(proc, exited) {
  if (exited) return exited;
  const done = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
  const r = await done;
  clearTimeout(t);
  return r;
}

export async function startServer({ herald, dataDir, port, core = '0', extra = [], pre = [] }) {
  rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const args = ['-c', String(core), herald, '--data', dataDir, '--app', join(root, 'examples', 'twitch-jobs'), ...pre,
    'serve', '--port', String(port),
    // Thousands of benchmark clients come from one address: lift the per-address bound.
    '--max-connections', '200000', '--max-per-address', '200000', ...extra];
  const proc = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
    if (err.length > 100000) err = err.slice(-50000);
  });
  const key = await new Promise((resolveKey, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out} ${err}`)), 30000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('listening on')) {
        clearTimeout(timer);
        // The first start wrote the admin key to a file (mode 0600); it never prints it.
        resolveKey(readFileSync(join(dataDir, 'admin.key'), 'utf8').trim());
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited ${code}: ${out} ${err}`)));
  });
  proc.removeAllListeners('exit');
  let exited = null;
  proc.on('exit', (code, sig) => {
    exited = { code, sig };
  });
  return {
    proc,
    pid: proc.pid, // taskset execs herald: same pid
    key,
    url: `ws://127.0.0.1:${port}/ws`,
    /* Convex's sync protocol; any version segment is accepted. */
    syncUrl: `ws://127.0.0.1:${port}/api/1.48.0/sync`,
    port,
    stderr: () => err,
    exited: () => exited,
    stop: () => stopProcess(proc, exited),
  };
}

const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux x86-64

/* utime + stime of every thread of the process, in ms (10 ms ticks). */
export function cpuMs(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after the name start at field 3 (state): utime is field 14, stime 15
  return ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK;
}

/* Time on a CPU of every thread, in ms, from schedstat (ns precision). */
export function schedMs(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* a thread that just ended */
    }
  }
  return ns / 1e6;
}

/* Resident set size in bytes (`field`: VmRSS, RssAnon, RssFile). */
export function rssBytes(pid, field = 'VmRSS') {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/* Anonymous resident memory (malloc'd): RSS without the mapped database file. */
export const anonBytes = (pid) => rssBytes(pid, 'RssAnon');

/* ---- clients ---- */

/*
 * Opens a WebSocket, authenticates with the admin key and resolves with it.
 * `onMessage(text)` receives every message after the auth ack. `options`
 * go to the `ws` client (and on to http.request), e.g. `localAddress`.
 */
export function openClient(url, key, onMessage, options = {}) {
  return new Promise((resolveWs, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, ...options });
    let authed = false;
    ws.on('error', (e) => {
      if (!authed) reject(e);
    });
    ws.on('open', () => ws.send(JSON.stringify({ type: 'auth', id: 'a', token: key })));
    ws.on('message', (data) => {
      if (!authed) {
        const m = JSON.parse(data);
        if (m.type !== 'ack') return reject(new Error(`auth failed: ${data}`));
        authed = true;
        resolveWs(ws);
        return;
      }
      onMessage(data);
    });
  });
}

/*
 * A minimal client of Convex's sync protocol (docs/convex-clients.md,
 * src/sync.c): opens a WebSocket at `url` (the server's syncUrl), sends
 * Connect and, with `key`, Authenticate as the admin (as the native
 * watchers authenticate), and resolves with it once open. The official
 * client is not used: 5,000 of them would measure the client, not the
 * server. `onMessage(data)` receives every frame (Transitions, Pings) as
 * it came; the caller sends its own ModifyQuerySet.
 */
let syncSessions = 0;
export function openSyncClient(url, key, onMessage, options = {}) {
  return new Promise((resolveWs, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, ...options });
    let open = false;
    ws.on('error', (e) => {
      if (!open) reject(e);
    });
    ws.on('open', () => {
      open = true;
      const n = syncSessions++;
      ws.send(JSON.stringify({
        type: 'Connect', sessionId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
        connectionCount: 0, lastCloseReason: 'InitialConnect', clientTs: Date.now(),
      }));
      if (key) ws.send(JSON.stringify({ type: 'Authenticate', tokenType: 'Admin', value: key, baseVersion: 0 }));
      resolveWs(ws);
    });
    ws.on('message', onMessage);
  });
}

/* The bytes a server-to-client WebSocket frame of this payload takes on the wire (unmasked header). */
export function frameBytes(payloadLength) {
  return payloadLength + (payloadLength < 126 ? 2 : payloadLength < 65536 ? 4 : 10);
}

/* Opens `n` clients, `wave` at a time; `make(i)` returns [onMessage]; `options` as openClient's;
 * `open`: openClient (the native protocol) or openSyncClient. */
export async function openMany(url, key, n, make, wave = 200, options = {}, open = openClient) {
  const out = new Array(n);
  for (let i = 0; i < n; i += wave) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + wave); j++)
      batch.push(open(url, key, make(j), options).then((ws) => (out[j] = ws)));
    await Promise.all(batch);
  }
  return out;
}

export function closeAll(list) {
  return Promise.all(
    list.filter(Boolean).map(
      (ws) =>
        new Promise((r) => {
          if (ws.readyState === 3) return r();
          ws.once('close', r);
          ws.terminate();
        }),
    ),
  );
}

/* A writer connection: `request(msg)` sends with a fresh id and resolves with the answer. */
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

/* Inserts `n` videos through one writer, 1,000 per mutation; resolves with their ids. */
export async function insertVideos(writer, n, tag = 'v') {
  const ids = [];
  for (let i = 0; i < n; i += 1000) {
    const ops = [];
    for (let j = i; j < Math.min(n, i + 1000); j++)
      ops.push({
        op: 'insert',
        table: 'videos',
        value: { twitchId: String(1900000000 + j), title: `${tag} video ${j}`, status: 'Queued', jobId: `job-${j}`, progressPercentage: 0 },
      });
    const a = await writer.request({ type: 'mutate', ops });
    if (a.type !== 'ack') throw new Error(`insert failed: ${JSON.stringify(a)}`);
    ids.push(...a.value);
  }
  return ids;
}

/* ---- one benchmark run ---- */

/*
 * A benchmark's options: --herald, --data and --server-args (more
 * arguments for `serve`, split at spaces), then its own `defaults`
 * (--port among them).
 */
export function benchArgs(argv, defaults) {
  return parseArgs(argv, { herald: 'build-release/herald', data: 'build-release/bench-live-data', serverArgs: '', ...defaults });
}

/*
 * Runs one benchmark: starts a fresh server from the options `o` (`pre`:
 * herald options before `serve`), opens a writer connection and runs
 * main(srv, writer), which closes what it opened. Then stops the server,
 * says how many connections it closed as too far behind if `culls` is
 * 'count' ('tail': with the end of its stderr), and exits 1 if main threw
 * or the server exited during the run, 0 if not.
 */
export async function runBenchmark(o, main, { pre = [], culls = null } = {}) {
  const srv = await startServer({ herald: o.herald, dataDir: o.data, port: o.port, extra: o.serverArgs ? o.serverArgs.split(' ') : [], pre });
  let failed = false;
  try {
    await main(srv, await openWriter(srv.url, srv.key));
  } catch (e) {
    console.error(e);
    failed = true;
  } finally {
    const ex = srv.exited();
    if (ex) {
      console.log(`\n**server exited during the benchmark: ${JSON.stringify(ex)}**\n`);
      failed = true;
    }
    await srv.stop();
    const n = culls ? (srv.stderr().match(/closing connection/g) || []).length : 0;
    if (n) console.log(`\nserver closed ${n} connections as too far behind${culls === 'tail' ? `; stderr tail:\n${srv.stderr().slice(-500)}` : ''}`);
  }
  process.exit(failed ? 1 : 0);
}

/* ---- statistics and output ---- */

export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function sortedCopy(arr, n = arr.length) {
  const a = Float64Array.from(arr.subarray ? arr.subarray(0, n) : arr.slice(0, n));
  a.sort();
  return a;
}

export function fmtInt(x) {
  return Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-';
}

export function fmtMs(x) {
  if (!Number.isFinite(x)) return '-';
  return x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US');
}

export function table(headers, rows, align) {
  const a = align || headers.map((_, i) => (i === 0 ? 'l' : 'r'));
  const lines = [`| ${headers.join(' | ')} |`, `|${a.map((x) => (x === 'l' ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.join(' | ')} |`);
  return lines.join('\n');
}

/* The fdatasync rate of the disk right now (4 KiB overwrite), as LIMITS.md measures it. */
export async function fsyncRate(dir, ms = 1000) {
  const { openSync, writeSync, fdatasyncSync, closeSync, unlinkSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'fsync-probe');
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(4096, 7);
  const t0 = now();
  let n = 0;
  while (now() - t0 < ms) {
    writeSync(fd, buf, 0, buf.length, 0);
    fdatasyncSync(fd);
    n++;
  }
  closeSync(fd);
  unlinkSync(path);
  return (n * 1000) / (now() - t0);
}

/* Ping round trips to the server over an open client (one at a time). */
export async function pingRtt(url, key, n = 500) {
  let resolveOne;
  const ws = await openClient(url, key, () => resolveOne());
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const t0 = now();
    await new Promise((r) => {
      resolveOne = r;
      ws.send(`{"type":"ping","id":"p${i}"}`);
    });
    out[i] = now() - t0;
  }
  await closeAll([ws]);
  out.sort();
  return { p50: percentile(out, 50), p99: percentile(out, 99) };
}
