/*
 * Replication lag and the cost of the JetStream append (bench/repl/run.sh,
 * docs/performance.md "Replication"): one writer on the primary patches
 * --jobs videos in turn at fixed target rates (open loop, paced every
 * millisecond), each patch carrying its sequence number in `updatedAt`;
 * on every replica (and on the primary, for comparison) one connection per
 * video is subscribed to it (`get`). A watcher reads the number back from
 * the diff, so each push is matched to its very mutation, on the
 * generator's one clock:
 *   ack       = the writer's ack - the send (the mutation's latency)
 *   lag       = a replica's push - the primary's ack (commit → replica push)
 *   push      = a node's push - the send
 * Then, with --saturate W, the writer keeps W mutations in flight for
 * --seconds: the highest rate the primary acknowledges.
 *
 * --replicas -1 runs a single node without --replicate (the baseline);
 * 0, 1, 2 a primary with that many replicas, on a NATS cluster of three
 * servers that this script starts (bench/repl/nats.py) and stops.
 *
 * node lag.mjs --herald build-bench16/herald --data DIR [--replicas 1] [--rates 1000,2000,4000]
 *   [--seconds 5] [--jobs 100] [--saturate 0] [--primary-watchers] [--no-sync] [--node-args "--max-behind 4096"]
 */
import {
  Samples, closeAll, cpuBusy, cpuTicks, fmtInt, fmtMs, health, insertVideos, loadavg, now, openMany, openWriter,
  parseArgs, percentile, schedMs, sleep, startNats, startTopology, waitSeq,
} from './lib.mjs';

const o = parseArgs(process.argv.slice(2), {
  herald: 'build-bench16/herald',
  data: 'build-bench16/bench-repl-data',
  port: 3401,
  replicas: 1,
  rates: '1000',
  seconds: 5,
  warmup: 1,
  jobs: 100,
  maxInflight: 20000,
  saturate: 0, // mutations kept in flight for the saturation phase; 0: none
  primaryWatchers: false,
  nodeArgs: '', // more options of `serve`, split at spaces
  noSync: false, // every node with --no-sync (commits not fsynced)
  serverCore: '0',
  natsCore: '',
  drain: 10000, // ms to wait after a window for the last acks and pushes
  label: '',
});

const J = o.jobs;
const single = o.replicas < 0;
const nats = single ? null : await startNats({ core: o.natsCore });
let topo = null;
let failed = false;
const results = [];
try {
  topo = await startTopology({ herald: o.herald, data: o.data, basePort: o.port, replicas: o.replicas, nats, core: o.serverCore, extra: o.nodeArgs ? o.nodeArgs.split(' ') : [], pre: o.noSync ? ['--no-sync'] : [] });
  await main(topo);
} catch (e) {
  console.error(e);
  failed = true;
} finally {
  if (topo) {
    for (const n of topo.nodes) {
      const ex = n.exited();
      if (ex) {
        console.log(`\n**node ${n.node || 'single'} exited during the benchmark: ${JSON.stringify(ex)}**; its log's end:\n\`\`\`\n${n.log().slice(-1500)}\n\`\`\``);
        failed = true;
      }
    }
    await topo.stop();
  }
  if (nats) await nats.stop();
}
process.exit(failed ? 1 : 0);

async function main(topo) {
  const { primary, replicas } = topo;
  const writer = await openWriter(primary.url, primary.key);
  const { ids: vids } = await insertVideos(writer, J, 'lag');
  const pseq = single ? 0 : (await health(primary.port)).replication.seq;
  if (!single) await waitSeq(replicas.map((r) => r.port), pseq);

  /* Watched nodes: every replica, and the primary when asked (or when it is alone). */
  const watched = [...replicas];
  if (o.primaryWatchers || replicas.length === 0) watched.unshift(primary);
  const rates = o.rates ? o.rates.split(',').map(Number) : [];
  const total = rates.reduce((a, r) => a + Math.ceil(r * (o.seconds + o.warmup + o.drain / 1000 + 2)), 0) +
    (o.saturate ? 60000 * (o.seconds + 12) : 0) + 10;
  const sendT = new Float64Array(total + 1);
  const ackT = new Float64Array(total + 1);
  const arrive = watched.map(() => new Float64Array(total + 1));
  const got = watched.map(() => new Uint8Array(total + 1));
  /* The last patch each watcher saw of its video; patches of video j are j, j + J, ... (video 0: J, 2J, ...). */
  const lastSeq = watched.map(() => Float64Array.from({ length: J }, (_, j) => (j === 0 ? 0 : j - J)));
  let wrong = 0, subscribed = 0, ackErrors = 0;

  const conns = [];
  for (let w = 0; w < watched.length; w++) {
    const node = watched[w];
    const onMsg = (j) => (data) => {
      const t = now();
      const m = JSON.parse(data);
      if (m.type === 'result') {
        subscribed++;
        return;
      }
      if (m.type !== 'update') {
        if (wrong++ < 5) console.error(`watcher ${node.node}/${j}: ${String(data).slice(0, 200)}`);
        return;
      }
      for (const ch of m.changes) {
        const s = ch.diff ? ch.diff.o && ch.diff.o.s && ch.diff.o.s.updatedAt : ch.value && ch.value.updatedAt;
        if (typeof s !== 'number' || s <= lastSeq[w][j]) {
          if (wrong++ < 5) console.error(`watcher ${node.node}/${j}: ${String(data).slice(0, 200)}`);
          continue;
        }
        /* Patches of this video that one group folded into this push arrive now too. */
        for (let q = lastSeq[w][j] + J; q <= s; q += J) {
          arrive[w][q] = t;
          got[w][q] = 1;
        }
        lastSeq[w][j] = s;
      }
    };
    const list = await openMany(node.url, node.key, J, onMsg);
    list.forEach((ws, j) => ws.send(JSON.stringify({ type: 'sub', id: 's', query: { table: 'videos', get: vids[j] } })));
    conns.push(...list);
  }
  while (subscribed < watched.length * J) await sleep(10);

  let seq = 0; // updatedAt 0 is the inserted state; the first patch is 1
  let inflight = 0;
  const ws = writer.ws;
  ws.removeAllListeners('message');
  let statsWaiter = null;
  ws.on('message', (data) => {
    const t = now();
    const m = JSON.parse(data);
    if (m.id === 'stats') {
      if (statsWaiter) statsWaiter(m.value || {});
      return;
    }
    const s = Number(m.id);
    ackT[s] = t;
    inflight--;
    if (m.type !== 'ack' && ackErrors++ < 5) console.error(`writer: ${String(data).slice(0, 300)}`);
  });
  const send = () => {
    const s = ++seq;
    // patches of video v are s = v, v + J, v + 2J, ...: seq 1 patches video 1 % J
    sendT[s] = now();
    inflight++;
    ws.send(`{"type":"mutate","id":"${s}","ops":[{"op":"patch","id":"${vids[s % J]}","value":{"progressPercentage":${s % 101},"updatedAt":${s}}}]}`);
  };

  /* The primary's own view (admin stats, its last 1,000 mutations): submit → durable is a
   * mutation's time at the writer (queue, run, the append, the group's commit and fsync). */
  const stats = () => new Promise((r) => {
    statsWaiter = r;
    ws.send('{"type":"admin","id":"stats","op":"stats"}');
  });

  const nodesPids = topo.nodes.map((n) => n.pid);
  const cpuOf = () => nodesPids.map((p) => schedMs(p));
  const natsCpu = () => (nats ? nats.pids.reduce((a, p) => a + schedMs(p), 0) : 0);

  /* Measures mutations (lo, hi]; waits for their acks and pushes; returns a row's figures. */
  const measure = async (lo, hi, t0, t1, c0, c1, n0, n1, k0, k1, target) => {
    const end = now() + o.drain;
    const done = () => {
      for (let s = lo + 1; s <= hi; s++) {
        if (!ackT[s]) return false;
        for (let w = 0; w < watched.length; w++) if (!got[w][s]) return false;
      }
      return true;
    };
    while (!done() && now() < end) await sleep(20);
    const ack = new Samples(), acks = { n: 0 };
    let lastAck = 0;
    for (let s = lo + 1; s <= hi; s++) {
      if (ackT[s]) {
        ack.push(ackT[s] - sendT[s]);
        acks.n++;
        lastAck = Math.max(lastAck, ackT[s]);
      }
    }
    const per = watched.map((node, w) => {
      const lag = new Samples(), push = new Samples();
      let n = 0;
      for (let s = lo + 1; s <= hi; s++) {
        if (!got[w][s]) continue;
        n++;
        push.push(arrive[w][s] - sendT[s]);
        if (ackT[s]) lag.push(arrive[w][s] - ackT[s]);
      }
      const l = lag.sorted(), ps = push.sorted();
      return {
        node: node.node || 'single', role: node === primary ? 'primary' : 'replica', n,
        lagP50: percentile(l, 50), lagP99: percentile(l, 99), lagMax: l[l.length - 1],
        pushP50: percentile(ps, 50), pushP99: percentile(ps, 99), pushMax: ps[ps.length - 1],
      };
    });
    const a = ack.sorted();
    const secs = (t1 - t0) / 1000;
    return {
      label: o.label, replicas: o.replicas, target, sent: hi - lo, sentRate: (hi - lo) / secs,
      /* acknowledged per second over the sending window: acks of this window's mutations
       * that came by its end plus the drain's, over the time from first send to last ack */
      ackRate: acks.n / ((Math.max(lastAck, t1) - t0) / 1000),
      acked: acks.n,
      ackP50: percentile(a, 50), ackP99: percentile(a, 99), ackMax: a[a.length - 1],
      per,
      cpu: c1.map((x, i) => (100 * (x - c0[i])) / (t1 - t0)),
      natsCpu: (100 * (n1 - n0)) / (t1 - t0),
      busy: cpuBusy(k0, k1),
    };
  };

  for (const rate of rates) {
    const t0 = now();
    let lo = -1, hi = -1, tw0 = 0, tw1 = 0, c0, n0, k0;
    const perMs = rate / 1000;
    let sentHere = 0;
    const tEnd = t0 + (o.warmup + o.seconds) * 1000;
    while (now() < tEnd) {
      const t = now();
      if (lo < 0 && t - t0 >= o.warmup * 1000) {
        lo = seq;
        tw0 = t;
        c0 = cpuOf();
        n0 = natsCpu();
        k0 = cpuTicks();
      }
      const want = Math.floor((t - t0) * perMs);
      while (sentHere < want && inflight < o.maxInflight) {
        send();
        sentHere++;
      }
      await sleep(1);
    }
    hi = seq;
    tw1 = now();
    const c1 = cpuOf(), n1 = natsCpu(), k1 = cpuTicks();
    const st = await stats();
    const r = await measure(lo, hi, tw0, tw1, c0, c1, n0, n1, k0, k1, rate);
    r.submitToDurable = st.submitToDurable;
    r.commitToPush = st.commitToPush;
    results.push(r);
    printRow(r);
    await sleep(500);
  }

  if (o.saturate) {
    /* Closed loop: W in flight for warmup + seconds. */
    let lo = -1, tw0 = 0, c0, n0, k0;
    const t0 = now();
    const tEnd = t0 + (o.warmup + o.seconds) * 1000;
    while (now() < tEnd) {
      const t = now();
      if (lo < 0 && t - t0 >= o.warmup * 1000) {
        lo = seq;
        tw0 = t;
        c0 = cpuOf();
        n0 = natsCpu();
        k0 = cpuTicks();
      }
      while (inflight < o.saturate) send();
      await new Promise((r) => setImmediate(r));
    }
    const hi = seq, tw1 = now();
    const c1 = cpuOf(), n1 = natsCpu(), k1 = cpuTicks();
    const r = await measure(lo, hi, tw0, tw1, c0, c1, n0, n1, k0, k1, `sat ${o.saturate}`);
    results.push(r);
    printRow(r);
  }

  if (!single) {
    const h = await health(primary.port);
    process.stderr.write(`primary at the end: ${JSON.stringify(h.replication)}\n`);
  }
  const m = await fetch(`http://127.0.0.1:${primary.port}/metrics`, { headers: { authorization: `Bearer ${primary.key}` } }).then((r) => r.text()).catch(() => '');
  const metric = (name) => Number((new RegExp(`^${name} (\\S+)`, 'm').exec(m) || [])[1]);
  const commits = metric('herald_commits_total'), groups = metric('herald_groups_total');
  /* Snapshots the primary published meanwhile (every --snapshot-every groups): each is a hot backup sent to JetStream. */
  const snapshots = (primary.log().match(/snapshot \S+ published/g) || []).length;
  console.log(`RESULT ${JSON.stringify({ results, commits, groups, snapshots, wrong, ackErrors, load: loadavg() })}`);
  await closeAll([...conns, ws]);
}

function printRow(r) {
  const p = r.per.map((x) => `${x.role} ${x.node}: ${fmtInt(x.n)} pushes, lag p50 ${fmtMs(x.lagP50)} p99 ${fmtMs(x.lagP99)} max ${fmtMs(x.lagMax)}; push p50 ${fmtMs(x.pushP50)} p99 ${fmtMs(x.pushP99)}`).join(' | ');
  const sd = r.submitToDurable ? ` | at the primary: submit→durable p50 ${fmtMs(r.submitToDurable.p50Ms)} p99 ${fmtMs(r.submitToDurable.p99Ms)}, commit→push p50 ${fmtMs(r.commitToPush.p50Ms)} p99 ${fmtMs(r.commitToPush.p99Ms)}` : '';
  process.stderr.write(`[${o.label} replicas ${o.replicas}] target ${r.target}: sent ${fmtInt(r.sentRate)}/s acked ${fmtInt(r.ackRate)}/s (${r.acked}/${r.sent}) ack p50 ${fmtMs(r.ackP50)} p99 ${fmtMs(r.ackP99)} max ${fmtMs(r.ackMax)} | ${p} | cpu ${r.cpu.map((x) => x.toFixed(0) + '%').join(' ')} nats ${r.natsCpu.toFixed(0)}% busy ${r.busy}${sd}\n`);
}

