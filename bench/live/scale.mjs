/*
 * Benchmark 5: many idle connections. What holding connections costs the
 * server, and what one write to all of them costs, at two scales:
 *
 * - --conns (10,000) idle authenticated connections, each subscribed once
 *   to the same query, on a fresh server for each kind of subscription in
 *   --kinds: `get` (a raw `get` of one video, as memory.mjs and fanout.mjs
 *   use) and `fn` (the query function `videos:getJobById` of
 *   examples/twitch-jobs). Server RSS (/proc/PID/status) before, after
 *   opening, after subscribing, after --writes patches of the watched video
 *   (each timed from the write to the first, half and last arrival), and
 *   after a second subscription each to a document of its own.
 * - --big (50,000) idle connections subscribed to the same query (--big-kind),
 *   the same steps without the second subscription, and how long opening
 *   them took. One source address can open only ~28,000 connections to one
 *   server port (the ephemeral port range), so each worker process uses an
 *   address of its own (127.R.S.2, 127.R.S.3, ...: every 127/8 address is
 *   loopback). The server needs a descriptor per connection: if its
 *   RLIMIT_NOFILE (inherited from the shell: run.sh raises the soft limit
 *   to the hard one) cannot hold --big, the run holds as many as it can and
 *   says so.
 *
 * The connections live in worker processes (child_process.fork of this
 * file, --per-worker each), which inherit this process's CPU affinity (the
 * generator's core under run.sh) and report to it over IPC. Arrival times
 * are read in each worker on CLOCK_MONOTONIC (process.hrtime), the clock
 * this process times the write with, so they compare across processes.
 *
 * node scale.mjs --herald build-release/herald --data DIR [--port N]
 *   [--conns 10000] [--kinds get,fn] [--big 50000] [--big-kind fn]
 *   [--writes 5] [--hold SECONDS] [--per-worker 12500]
 *
 * --hold keeps the --big connections idle that long after subscribing (before
 * the writes, which then check that every one is still there) and reports the
 * server's CPU meanwhile: Herald pings a silent WebSocket at half its idle
 * timeout (30 s), and lws keeps a validity timer per connection (its
 * default policy pings at 300 s).
 */
import { fork } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  anonBytes, benchArgs, closeAll, fmtInt, fmtMs, insertVideos, now, openClient, openMany, openWriter,
  percentile, rssBytes, schedMs, sleep, startServer, table,
} from './lib.mjs';

/* ---- what a subscription of each kind looks like ---- */

/* The `sub` message of kind `kind` watching video number `j` (id `vid`, jobId `job-j`). */
function subMessage(kind, id, vid, j) {
  if (kind === 'fn') return JSON.stringify({ type: 'sub', id, path: 'videos:getJobById', args: { jobId: `job-${j}` } });
  return JSON.stringify({ type: 'sub', id, query: { table: 'videos', get: vid } });
}

const KIND_NAME = { get: 'raw `get`', fn: '`videos:getJobById`' };

/* ---- worker: holds a share of the connections ---- */

function runWorker() {
  const marker = '"updatedAt":';
  let clients = [];
  let results = 0, errors = 0, firstError = null, closed = 0;
  let expect = -1, arrivals = new Float64Array(0), got = 0, wrong = 0, onAll = null;
  const onMessage = (data) => {
    const t = now();
    const s = data.toString();
    if (s.startsWith('{"type":"result"')) {
      results++;
      return;
    }
    if (s.startsWith('{"type":"update"')) {
      const i = s.indexOf(marker);
      if (i >= 0 && parseInt(s.slice(i + marker.length), 10) === expect) {
        arrivals[got++] = t;
        if (got === clients.length && onAll) onAll();
        return;
      }
      wrong++;
    } else if (!s.startsWith('{"type":"ack"')) {
      errors++;
    }
    if (!firstError) firstError = s.slice(0, 300);
  };
  const reply = (m) => process.send(m);
  const collect = () => {
    onAll = null;
    reply({ op: 'got', arrivals: Array.from(arrivals.subarray(0, got)), wrong });
  };
  process.on('disconnect', () => process.exit(0));
  process.on('message', async (m) => {
    try {
      if (m.op === 'open') {
        const t0 = now();
        clients = await openMany(m.url, m.key, m.n, () => onMessage, m.wave, { localAddress: m.localAddress });
        for (const ws of clients) ws.on('close', () => closed++);
        reply({ op: 'opened', ms: now() - t0 });
      } else if (m.op === 'sub') {
        /* Connection i watches video m.first + i of the list (modulo its length). */
        const t0 = now();
        const before = results + errors;
        clients.forEach((ws, i) => {
          const j = (m.first + i) % m.vids.length;
          ws.send(subMessage(m.kind, m.id, m.vids[j], m.jobs[j]));
        });
        const deadline = now() + 120000;
        while (results + errors - before < clients.length && now() < deadline) await sleep(10);
        if (errors) throw new Error(`${errors} subscriptions failed; first answer: ${firstError}`);
        if (results - before < clients.length) throw new Error(`only ${results - before} of ${clients.length} subscriptions answered`);
        reply({ op: 'subbed', ms: now() - t0 });
      } else if (m.op === 'arm') {
        expect = m.expect;
        arrivals = new Float64Array(clients.length);
        got = 0;
        onAll = collect;
        reply({ op: 'armed' });
      } else if (m.op === 'count') {
        reply({ op: 'count', closed });
      } else if (m.op === 'collect') {
        if (onAll) collect();
      } else if (m.op === 'close') {
        await closeAll(clients);
        clients = [];
        reply({ op: 'closed' });
      }
    } catch (e) {
      reply({ op: 'error', message: String(e && e.stack ? e.stack : e) });
    }
  });
}

/* A worker process and a way to ask it something and wait for its answer. */
function startWorker() {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, HERALD_SCALE_WORKER: '1' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const waiting = new Map();
  let failure = null;
  const failAll = (e) => {
    failure = e;
    for (const [, w] of waiting) w.reject(e);
    waiting.clear();
  };
  child.on('message', (m) => {
    if (m.op === 'error') return failAll(new Error(`worker ${child.pid}: ${m.message}`));
    const w = waiting.get(m.op);
    if (w) {
      waiting.delete(m.op);
      w.resolve(m);
    }
  });
  child.on('exit', (code, sig) => failAll(new Error(`worker ${child.pid} exited (${code ?? sig})`)));
  return {
    pid: child.pid,
    child,
    send: (msg) => child.send(msg),
    /* Resolves with the worker's next message of kind `answer`. */
    wait(answer) {
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => waiting.set(answer, { resolve, reject }));
    },
    ask(msg, answer) {
      const p = this.wait(answer);
      child.send(msg);
      return p;
    },
  };
}

/* ---- the machine ---- */

/* The soft RLIMIT_NOFILE of a process (Infinity when unlimited), and the hard one. */
function openFilesLimit(pid = 'self') {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.slice('Max open files'.length).trim().split(/\s+/);
  const n = (x) => (x === 'unlimited' ? Infinity : Number(x));
  return { soft: n(soft), hard: n(hard) };
}

function ephemeralPorts() {
  const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  return hi - lo + 1;
}

/* Kernel memory of every socket on the machine (both ends of each connection): TCP buffers and slab. */
function kernelBytes() {
  const tcp = /TCP: .* mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'));
  const slab = /Slab:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return { tcp: tcp ? Number(tcp[1]) * 4096 : NaN, slab: slab ? Number(slab[1]) * 1024 : NaN };
}

const fdCount = (pid) => readdirSync(`/proc/${pid}/fd`).length;
const mib = (b) => (b / 1048576).toFixed(1);
const kib = (b) => (b / 1024).toFixed(1);

/* ---- one run: a fresh server, `conns` connections, the steps ---- */

/*
 * Descriptors the server keeps out of its clients' reach (FD_RESERVE in
 * src/server.c: a connection whose descriptor comes within it of the limit
 * is refused), plus a margin.
 */
const SERVER_FD_RESERVE = 32 + 16;

/*
 * The source addresses of this invocation: 127.R.S.W for run R, worker W and
 * a random S. A client that binds its address gets its port before it knows
 * where it connects, so every port still in TIME_WAIT from an earlier run
 * (60 s) is taken; fresh addresses each time keep back-to-back runs apart.
 */
const ADDRESS_SET = 1 + Math.floor(Math.random() * 250);

async function scaleRun(o, { kind, conns, distinct, runIndex }) {
  const srv = await startServer({
    herald: o.herald, dataDir: o.data, port: o.port, extra: o.serverArgs ? o.serverArgs.split(' ') : [],
  });
  const workers = [];
  const res = { kind, asked: conns, steps: [], writes: [], notes: [] };
  try {
    /* A step that does not finish in time fails the run with the server's last words, instead of waiting forever. */
    const within = (p, what, s = o.timeout * 5) => {
      let timer;
      const late = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: not done after ${s} s; server CPU so far ` +
          `${fmtInt(schedMs(srv.pid))} ms; its stderr: ${srv.stderr().slice(-500)}`)), s * 1000);
      });
      return Promise.race([p, late]).finally(() => clearTimeout(timer));
    };
    const writer = await within(openWriter(srv.url, srv.key), 'opening the writer', 30);
    const vids = await insertVideos(writer, distinct ? conns : 1, `scale-${kind}`);
    const jobs = vids.map((_, j) => j);
    /* One warm-up connection with a subscription of the same kind, so that one-time allocations are in the baseline. */
    const warm = await within(openClient(srv.url, srv.key, () => {}), 'opening the warm-up connection', 30);
    warm.send(subMessage(kind, 'w', vids[0], 0));
    await sleep(500);

    /* As many connections as the server's descriptors allow. */
    const lim = openFilesLimit(srv.pid);
    const room = lim.soft - SERVER_FD_RESERVE - fdCount(srv.pid);
    if (conns > room) {
      const held = Math.floor(room / 100) * 100;
      res.notes.push(`asked for ${fmtInt(conns)} connections, but the server's RLIMIT_NOFILE is ${fmtInt(lim.soft)} ` +
        `(hard limit ${fmtInt(lim.hard)}; raising the hard limit needs CAP_SYS_RESOURCE): it can hold about ${fmtInt(room)} clients, ` +
        `so this run holds **${fmtInt(held)}**`);
      conns = held;
    }
    res.conns = conns;

    const snap = (key, name) => {
      const k = kernelBytes();
      res.steps.push({
        key, name, rss: rssBytes(srv.pid), anon: anonBytes(srv.pid), data: rssBytes(srv.pid, 'VmData'),
        tcp: k.tcp, slab: k.slab, gen: workers.reduce((a, w) => a + rssBytes(w.pid), 0),
      });
    };
    snap('base', 'baseline (server, writer and one warm-up connection with a subscription)');

    /* Workers, each with its own source address. */
    const per = Math.min(o.perWorker, openFilesLimit().soft - 200, ephemeralPorts() - 2000);
    const nw = Math.ceil(conns / per);
    const shares = [];
    for (let w = 0, first = 0; w < nw; w++) {
      const n = Math.floor(conns / nw) + (w < conns % nw ? 1 : 0);
      shares.push({ first, n, localAddress: `127.${runIndex + 1}.${ADDRESS_SET}.${2 + w}` });
      first += n;
      workers.push(startWorker());
    }
    const t0 = now();
    const cpu0 = schedMs(srv.pid);
    const opened = await within(Promise.all(workers.map((w, i) => w.ask({ op: 'open', url: srv.url, key: srv.key, n: shares[i].n, wave: o.wave, localAddress: shares[i].localAddress }, 'opened'))), 'opening the connections');
    res.openS = (now() - t0) / 1000;
    res.openCpuS = (schedMs(srv.pid) - cpu0) / 1000;
    res.workers = shares.map((s, i) => ({ ...s, openS: opened[i].ms / 1000 }));
    await sleep(1000);
    snap('open', `${fmtInt(conns)} idle connections, authenticated`);

    const subscribeAll = async (id, list, listJobs) => {
      const t = now();
      await within(Promise.all(workers.map((w, i) => w.ask({ op: 'sub', id, kind, vids: list, jobs: listJobs, first: shares[i].first }, 'subbed'))), 'subscribing');
      return (now() - t) / 1000;
    };
    res.subS = await subscribeAll('s1', [vids[0]], [0]);
    await sleep(1000);
    snap('sub', `+ one subscription each (${KIND_NAME[kind]}, all the same query: one shared evaluation)`);
    const stats = async () => (await writer.request({ type: 'admin', op: 'stats' })).value || {};
    res.stats = await stats();

    /* Idle for --hold seconds: what keeping them costs the server (pings, timers), and that they stay. */
    if (o.hold > 0 && !distinct) {
      const c0 = schedMs(srv.pid), t = now();
      let last = c0, busiest = 0;
      while (now() - t < o.hold * 1000) {
        await sleep(1000);
        const c = schedMs(srv.pid);
        busiest = Math.max(busiest, c - last);
        last = c;
      }
      const counts = await Promise.all(workers.map((w) => w.ask({ op: 'count' }, 'count')));
      res.hold = { s: (now() - t) / 1000, cpuMs: last - c0, busiest, closed: counts.reduce((a, x) => a + x.closed, 0) };
      snap('hold', `after ${o.hold} s idle`);
    }

    /* Writes: one patch of the watched video at a time, to every connection. */
    for (let k = 1; k <= o.writes; k++) {
      await Promise.all(workers.map((w) => w.ask({ op: 'arm', expect: k }, 'armed')));
      const gotAll = Promise.all(workers.map((w) => w.wait('got').catch((e) => e)));
      const c0 = schedMs(srv.pid);
      const g0 = workers.reduce((a, w) => a + schedMs(w.pid), 0);
      const tSend = now();
      let tAck = NaN;
      const answer = writer.request({ type: 'mutate', ops: [{ op: 'patch', id: vids[0], value: { progressPercentage: k % 101, updatedAt: k } }] })
        .then((a) => {
          tAck = now();
          if (a.type !== 'ack') throw new Error(`write ${k}: ${JSON.stringify(a)}`);
        });
      const timer = setTimeout(() => workers.forEach((w) => w.send({ op: 'collect' })), o.timeout * 1000);
      const replies = await gotAll;
      clearTimeout(timer);
      await answer;
      const c1 = schedMs(srv.pid);
      const g1 = workers.reduce((a, w) => a + schedMs(w.pid), 0);
      for (const r of replies) if (r instanceof Error) throw r;
      const all = Float64Array.from(replies.flatMap((r) => r.arrivals)).sort();
      const wrong = replies.reduce((a, r) => a + r.wrong, 0);
      if (all.length < conns) throw new Error(`write ${k}: only ${all.length} of ${conns} connections got it within ${o.timeout} s`);
      res.writes.push({
        first: all[0] - tSend, half: percentile(all, 50) - tSend, last: all[all.length - 1] - tSend,
        ack: tAck - tSend, srvCpu: c1 - c0, genCpu: g1 - g0, wrong,
      });
      const x = res.writes.at(-1);
      process.stderr.write(`${kind} ${fmtInt(conns)}: write ${k}: first ${fmtMs(x.first)} half ${fmtMs(x.half)} last ${fmtMs(x.last)} ` +
        `ack ${fmtMs(x.ack)} ms, server CPU ${fmtMs(x.srvCpu)} ms, generator CPU ${fmtMs(x.genCpu)} ms\n`);
      await sleep(o.gap);
    }
    await sleep(1000);
    snap('writes', `after ${o.writes} writes that reached every connection`);

    if (distinct) {
      res.sub2S = await subscribeAll('s2', vids, jobs);
      await sleep(1000);
      snap('sub2', `+ a second subscription each (${KIND_NAME[kind]}, ${fmtInt(conns)} distinct videos)`);
      res.stats2 = await stats();
    }
    const tc = now();
    await within(Promise.all(workers.map((w) => w.ask({ op: 'close' }, 'closed'))), 'closing the connections');
    res.closeS = (now() - tc) / 1000;
    await closeAll([warm, writer.ws]);
  } finally {
    for (const w of workers) w.child.kill();
    const ex = srv.exited();
    await srv.stop();
    if (ex) throw new Error(`the server exited during the run: ${JSON.stringify(ex)}; stderr: ${srv.stderr().slice(-500)}`);
    const refused = (srv.stderr().match(/out of file descriptors/g) || []).length;
    if (refused) res.notes.push('the server logged that it ran out of file descriptors');
  }
  return res;
}

/* ---- output ---- */

function memoryTable(r) {
  const s = r.steps;
  const rows = s.map((m, k) => {
    const prev = k ? s[k - 1] : null;
    const per = (f) => (prev ? fmtInt((m[f] - prev[f]) / r.conns) : '');
    return [m.name, mib(m.rss), mib(m.anon), mib(m.data), per('rss'), per('anon'), per('data')];
  });
  return table(['step', 'VmRSS MiB', 'RssAnon MiB', 'VmData MiB', 'Δ VmRSS B/conn', 'Δ RssAnon B/conn', 'Δ VmData B/conn'], rows);
}

const step = (r, key) => r.steps.find((x) => x.key === key);
const med = (arr) => percentile(Float64Array.from(arr).sort(), 50);
const max = (arr) => Math.max(...arr);

function fanoutRow(r) {
  const w = r.writes;
  const pick = (f) => w.map((x) => x[f]);
  return [`${fmtInt(r.conns)}, ${KIND_NAME[r.kind]}`, fmtMs(med(pick('first'))), fmtMs(med(pick('half'))),
    `**${fmtMs(med(pick('last')))}**`, fmtMs(max(pick('last'))), fmtMs(med(pick('ack'))), fmtMs(med(pick('srvCpu'))),
    ((med(pick('srvCpu')) * 1000) / r.conns).toFixed(1), fmtMs(med(pick('genCpu')))];
}

async function runParent() {
  const o = benchArgs(process.argv.slice(2), {
    port: 3297,
    conns: 10000,
    kinds: 'get,fn',
    big: 50000,
    bigKind: 'fn',
    hold: 0,
    writes: 5,
    perWorker: 12500,
    wave: 200,
    gap: 300,
    timeout: 60,
  });
  const runs = [];
  let failed = false;
  let index = 0;
  try {
    for (const kind of o.kinds.split(',').filter(Boolean)) {
      if (!KIND_NAME[kind]) throw new Error(`--kinds: unknown kind ${kind} (get, fn)`);
      runs.push(await scaleRun(o, { kind, conns: o.conns, distinct: true, runIndex: index++ }));
    }
    if (o.big > 0) runs.push({ big: true, ...(await scaleRun(o, { kind: o.bigKind, conns: o.big, distinct: false, runIndex: index++ })) });
  } catch (e) {
    console.error(e);
    failed = true;
  }

  const lim = openFilesLimit();
  console.log(`Many idle connections: each run starts a fresh server; the connections come from ${''
  }worker processes of the generator (${fmtInt(o.perWorker)} connections at most each, one source address each), ` +
    `opened ${o.wave} at a time per worker; each is authenticated with the admin key and subscribed once to the same query. ` +
    `The generator's RLIMIT_NOFILE: ${fmtInt(lim.soft)} (hard ${fmtInt(lim.hard)}).\n`);

  const small = runs.filter((r) => !r.big);
  for (const r of small) {
    console.log(`**${fmtInt(r.conns)} connections, ${KIND_NAME[r.kind]}** (opened in ${r.openS.toFixed(1)} s with ${r.openCpuS.toFixed(1)} s of server CPU, ` +
      `subscribed in ${r.subS.toFixed(1)} s; ` +
      `the server counted ${fmtInt(r.stats.connections)} WebSocket connections, ${fmtInt(r.stats.subscriptions)} subscriptions, ` +
      `${fmtInt(r.stats.queryInstances)} query instance(s)${r.stats2 ? `, then ${fmtInt(r.stats2.subscriptions)} and ${fmtInt(r.stats2.queryInstances)}` : ''}):\n`);
    console.log(memoryTable(r));
    console.log();
  }
  if (small.length) {
    const per = (r, a, b, f = 'rss') => (step(r, b)[f] - step(r, a)[f]) / r.conns;
    const kernel = (r) => (step(r, 'sub').tcp + step(r, 'sub').slab - step(r, 'base').tcp - step(r, 'base').slab) / r.conns;
    const rows = [
      ['server RSS per idle authenticated connection', ...small.map((r) => `${fmtInt(per(r, 'base', 'open'))} B (${kib(per(r, 'base', 'open'))} KiB)`)],
      ['**per idle subscribed connection** (goal ≤ 7 KiB)', ...small.map((r) => `**${fmtInt(per(r, 'base', 'sub'))} B (${kib(per(r, 'base', 'sub'))} KiB)**`)],
      ['the same after the writes', ...small.map((r) => `${fmtInt(per(r, 'base', 'writes'))} B (${kib(per(r, 'base', 'writes'))} KiB)`)],
      ['each further subscription to a document of its own', ...small.map((r) => (step(r, 'sub2') ? `${fmtInt(per(r, 'writes', 'sub2'))} B` : '-'))],
      ['VmData per subscribed connection (allocated, touched or not)', ...small.map((r) => `${fmtInt(per(r, 'base', 'sub', 'data'))} B`)],
      ['kernel: TCP buffers + slab per connection (both ends, whole machine)', ...small.map((r) => `${fmtInt(kernel(r))} B`)],
    ];
    console.log(table(['per connection', ...small.map((r) => `${fmtInt(r.conns)}, ${KIND_NAME[r.kind]}`)], rows));
    console.log();
  }

  const big = runs.find((r) => r.big);
  if (big) {
    for (const n of big.notes) console.log(`Note: ${n}.\n`);
    const [b0, b1, b2] = ['base', 'sub', 'writes'].map((k) => step(big, k));
    const perConn = (b1.rss - b0.rss) / big.conns;
    console.log(`**${fmtInt(big.conns)} idle subscribed connections, ${KIND_NAME[big.kind]}** ` +
      `(${big.workers.length} worker process(es), from ${big.workers.map((w) => w.localAddress).join(', ')}):\n`);
    console.log(memoryTable(big));
    console.log();
    const gen = b1.gen;
    console.log(table(['', ''], [
      ['opening and authenticating them (all workers at once)', `${big.openS.toFixed(1)} s (${fmtInt(big.conns / big.openS)}/s); ` +
        `server CPU ${big.openCpuS.toFixed(1)} s (${fmtInt((big.openCpuS * 1e6) / big.conns)} µs per connection)`],
      ['subscribing them (one shared query)', `${big.subS.toFixed(1)} s (${fmtInt(big.conns / big.subS)}/s)`],
      ['closing them', `${big.closeS.toFixed(1)} s`],
      ['server VmRSS with them', `${mib(b1.rss)} MiB; after the writes ${mib(b2.rss)} MiB`],
      ['**server RSS per idle subscribed connection**', `**${fmtInt(perConn)} B (${kib(perConn)} KiB)**`],
      ['server VmData per connection', `${fmtInt((b1.data - b0.data) / big.conns)} B`],
      ['kernel TCP buffers + slab, both ends, whole machine', `${mib(b1.tcp + b1.slab - b0.tcp - b0.slab)} MiB ` +
        `(${fmtInt((b1.tcp + b1.slab - b0.tcp - b0.slab) / big.conns)} B per connection)`],
      ['generator RSS (all workers)', `${mib(gen)} MiB`],
      ['the server\'s own count (admin `stats`)', `${fmtInt(big.stats.connections)} WebSocket connections, ` +
        `${fmtInt(big.stats.subscriptions)} subscriptions, ${fmtInt(big.stats.queryInstances)} query instance(s)`],
    ]));
    console.log();
    if (big.conns < big.asked)
      console.log(`Not measured, estimated at the cost per connection above: ${fmtInt(big.asked)} such connections would take ` +
        `~${mib(b0.rss + perConn * big.asked)} MiB of server RSS (VmData ~${mib(b0.data + ((b1.data - b0.data) / big.conns) * big.asked)} MiB) ` +
        `and ~${mib(((b1.tcp + b1.slab - b0.tcp - b0.slab) / big.conns) * big.asked)} MiB of kernel memory for both ends.\n`);
  }

  const held = runs.filter((r) => r.hold);
  if (held.length) {
    console.log(table(['held idle', 'for', 'server CPU', 'of a core', 'busiest second', 'connections closed meanwhile'], held.map((r) => [
      `${fmtInt(r.conns)}, ${KIND_NAME[r.kind]}`, `${r.hold.s.toFixed(0)} s`, `${(r.hold.cpuMs / 1000).toFixed(2)} s`,
      `${((100 * r.hold.cpuMs) / (r.hold.s * 1000)).toFixed(1)}%`, `${fmtInt(r.hold.busiest)} ms`, fmtInt(r.hold.closed)])));
    console.log();
  }
  const withWrites = runs.filter((r) => r.writes && r.writes.length);
  if (withWrites.length) {
    console.log(`One write reaching every connection (${o.writes} patches of the watched video, one at a time; ` +
      `ms from sending the mutation, medians over the writes; CPU: schedstat of all threads):\n`);
    console.log(table(['connections, subscription', 'first ms', 'half ms', '**last ms**', 'last max ms', 'ack ms',
      'server CPU ms/write', 'server µs/push', 'generator CPU ms/write'], withWrites.map(fanoutRow)));
    const wrong = withWrites.reduce((a, r) => a + r.writes.reduce((b, x) => b + x.wrong, 0), 0);
    console.log(`\n${wrong} unexpected update frames. The generator's core receives every frame too: ` +
      `"last" includes its time to read them all (its CPU per write above). ` +
      `For the raw libwebsockets floor of the same push see fanout.mjs --raw (LIMITS.md: ~115,000 100-byte frames/s on one core).`);
    if (wrong) console.log('**CHECK FAILED: unexpected messages**');
  }
  process.exit(failed ? 1 : 0);
}

/* Last, once every constant above is initialised: a worker when forked by a run, else the run. */
if (process.env.HERALD_SCALE_WORKER) runWorker();
else await runParent();
