/*
 * Fan-out per replica (bench/repl/run.sh, docs/performance.md "Replication"):
 * --conns connections on one replica, all subscribed to the same `get` of
 * one video; the writer on the primary patches it. As bench/live/fanout.mjs
 * does on a single node: one write at a time (--repeat of them), timed until
 * the last connection has it; then writes at fixed rates (--rates, writes per
 * second, for --seconds each), counting the pushes delivered per second and
 * each push's lag (its arrival - the primary's ack, and - the send).
 *
 * --replicas -1: the same against a single node without --replicate (the
 * subscribers and the writer on the one node), for the ratio.
 *
 * Placement: the subscribed node (the replica, or the single node) on
 * --server-core, the primary on --primary-core, the generator where
 * run.sh puts it; the NATS servers unpinned.
 *
 * node fanout.mjs --herald build-bench16/herald --data DIR [--replicas 1] [--conns 1000,5000,10000]
 *   [--repeat 20] [--rates 5,10,20] [--seconds 5]
 */
import {
  Samples, closeAll, cpuBusy, cpuTicks, fmtInt, fmtMs, health, insertVideos, loadavg, now, openMany, openWriter,
  parseArgs, percentile, rssBytes, schedMs, sleep, sorted, startNats, startTopology, waitSeq,
} from './lib.mjs';

const o = parseArgs(process.argv.slice(2), {
  herald: 'build-bench16/herald',
  data: 'build-bench16/bench-repl-data',
  port: 3421,
  replicas: 1,
  conns: '1000,5000,10000',
  repeat: 20,
  gap: 200,
  rates: '',
  seconds: 5,
  serverCore: '0',
  primaryCore: '1',
  natsCore: '',
  nodeArgs: '',
  label: '',
});

const single = o.replicas < 0;
const nats = single ? null : await startNats({ core: o.natsCore });
let topo = null, failed = false;
const results = [];
try {
  topo = await startTopology({
    herald: o.herald, data: o.data, basePort: o.port, replicas: single ? -1 : Math.max(1, o.replicas), nats,
    core: o.serverCore, primaryCore: single ? o.serverCore : o.primaryCore, extra: o.nodeArgs ? o.nodeArgs.split(' ') : [],
  });
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
  const { primary } = topo;
  const target = single ? primary : topo.replicas[0];
  const writer = await openWriter(primary.url, primary.key);
  const { ids: [vid] } = await insertVideos(writer, 1, 'fanout');
  if (!single) await waitSeq([target.port], (await health(primary.port)).replication.seq);
  const marker = '"updatedAt":';
  let k = 0; // the write in flight, or the last sent; updatedAt 0 is the inserted state
  const sendT = [], ackT = [];
  const ws = writer.ws;
  ws.removeAllListeners('message');
  ws.on('message', (data) => {
    const t = now();
    const m = JSON.parse(data);
    if (m.type !== 'ack') console.error(`writer: ${String(data).slice(0, 200)}`);
    ackT[Number(m.id)] = t;
  });
  const write = () => {
    const s = ++k;
    sendT[s] = now();
    ws.send(`{"type":"mutate","id":"${s}","ops":[{"op":"patch","id":"${vid}","value":{"progressPercentage":${s % 101},"updatedAt":${s}}}]}`);
    return s;
  };

  for (const n of o.conns.split(',').map(Number)) {
    /* Per connection, the last write it has; per write: the arrivals. */
    const last = new Float64Array(n);
    let subscribed = 0, wrong = 0, skipped = 0;
    let arrivals = new Float64Array(n), nArr = 0, expect = -1; // one write at a time
    let sustained = null; // { lagAck: Samples, lagSend: Samples, delivered }
    let sustainedFrom = Infinity; // folded writes count from here
    const t0 = now();
    const clients = await openMany(target.url, target.key, n, (i) => (data) => {
      const t = now();
      const s = data.toString('latin1', 0, Math.min(data.length, 400));
      if (s.startsWith('{"type":"result"')) {
        subscribed++;
        return;
      }
      const at = s.indexOf(marker);
      const seq = at < 0 ? NaN : parseInt(s.slice(at + marker.length), 10);
      if (!s.startsWith('{"type":"update"') || !(seq > last[i])) {
        if (wrong++ < 5) console.error(`unexpected: ${s.slice(0, 200)}`);
        return;
      }
      skipped += seq - last[i] - 1 > 0 && last[i] >= sustainedFrom ? seq - last[i] - 1 : 0;
      last[i] = seq;
      if (sustained) {
        sustained.delivered++;
        sustained.lagSend.push(t - sendT[seq]);
        if (ackT[seq]) sustained.lagAck.push(t - ackT[seq]);
        else sustained.early++;
      } else if (seq === expect) {
        arrivals[nArr++] = t;
      }
    });
    const sub = JSON.stringify({ type: 'sub', id: 's', query: { table: 'videos', get: vid } });
    for (const c of clients) c.send(sub);
    while (subscribed < n) await sleep(10);
    last.fill(k);
    const setupS = (now() - t0) / 1000;
    const rss = rssBytes(target.pid);

    /* One write at a time. */
    const first = [], med = [], lastA = [], ackL = [], lagMed = [], lagLast = [], cpu = [];
    for (let r = 0; r < o.repeat; r++) {
      nArr = 0;
      const c0 = schedMs(target.pid);
      expect = k + 1;
      const s = write();
      const deadline = now() + 30000;
      while ((nArr < n || !ackT[s]) && now() < deadline) await sleep(1);
      const c1 = schedMs(target.pid);
      if (nArr < n) throw new Error(`write ${s}: only ${nArr} of ${n} connections got it in 30 s`);
      const a = sorted(arrivals, nArr);
      first.push(a[0] - sendT[s]);
      med.push(percentile(a, 50) - sendT[s]);
      lastA.push(a[n - 1] - sendT[s]);
      ackL.push(ackT[s] - sendT[s]);
      lagMed.push(percentile(a, 50) - ackT[s]);
      lagLast.push(a[n - 1] - ackT[s]);
      cpu.push(c1 - c0);
      await sleep(o.gap);
    }
    const p50 = (x) => percentile(sorted(x), 50);
    const one = {
      n, setupS, rssMiB: rss / 1048576, first: p50(first), median: p50(med), last: p50(lastA), lastMax: Math.max(...lastA),
      ack: p50(ackL), lagMedian: p50(lagMed), lagLast: p50(lagLast), cpuPerWrite: p50(cpu),
      pushesPerS: n / (p50(lastA) / 1000),
    };
    process.stderr.write(`[${o.label} ${single ? 'single' : 'replica'} ${n}] one write: first ${fmtMs(one.first)} median ${fmtMs(one.median)} last ${fmtMs(one.last)} (max ${fmtMs(one.lastMax)}) ack ${fmtMs(one.ack)} lag(ack→median) ${fmtMs(one.lagMedian)} lag(ack→last) ${fmtMs(one.lagLast)} cpu/write ${fmtMs(one.cpuPerWrite)} ms; ${fmtInt(one.pushesPerS)} pushes/s; rss ${one.rssMiB.toFixed(0)} MiB\n`);

    /* Writes at fixed rates. */
    const rates = [];
    for (const rate of o.rates ? o.rates.split(',').map(Number) : []) {
      await sleep(300);
      sustained = { lagAck: new Samples(1 << 20), lagSend: new Samples(1 << 20), delivered: 0, early: 0 };
      skipped = 0;
      sustainedFrom = k;
      const c0 = schedMs(target.pid), k0 = cpuTicks(), g0 = process.cpuUsage();
      const tStart = now();
      let sent = 0;
      const first = k + 1;
      while (now() - tStart < o.seconds * 1000) {
        const want = Math.floor(((now() - tStart) * rate) / 1000);
        while (sent < want) {
          write();
          sent++;
        }
        await sleep(1);
      }
      const tSent = now();
      const lastW = k;
      const deadline = tSent + 20000;
      let allIn = false;
      while (now() < deadline) {
        allIn = true;
        for (let i = 0; i < n; i++) if (last[i] < lastW) { allIn = false; break; }
        if (allIn) break;
        await sleep(5);
      }
      const tDone = now();
      const c1 = schedMs(target.pid), k1 = cpuTicks(), g1 = process.cpuUsage();
      const la = sustained.lagAck.sorted(), ls = sustained.lagSend.sorted();
      const row = {
        rate, writes: lastW - first + 1, delivered: sustained.delivered, skipped, allIn,
        pushesPerS: sustained.delivered / ((tDone - tStart) / 1000), wanted: rate * n,
        lagAckP50: percentile(la, 50), lagAckP99: percentile(la, 99), lagAckMax: la[la.length - 1],
        lagSendP50: percentile(ls, 50), lagSendP99: percentile(ls, 99), lagSendMax: ls[ls.length - 1],
        early: sustained.early, serverCpu: (100 * (c1 - c0)) / (tDone - tStart),
        genCpu: (100 * ((g1.user + g1.system - g0.user - g0.system) / 1000)) / (tDone - tStart), busy: cpuBusy(k0, k1),
        drainMs: tDone - tSent,
      };
      sustained = null;
      rates.push(row);
      process.stderr.write(`[${o.label} ${single ? 'single' : 'replica'} ${n}] ${rate} writes/s: ${fmtInt(row.pushesPerS)} pushes/s of ${fmtInt(row.wanted)} wanted (${row.delivered} delivered, ${row.skipped} folded, all in: ${row.allIn}, drain ${fmtMs(row.drainMs)} ms); lag ack→push p50 ${fmtMs(row.lagAckP50)} p99 ${fmtMs(row.lagAckP99)} max ${fmtMs(row.lagAckMax)}; send→push p50 ${fmtMs(row.lagSendP50)} p99 ${fmtMs(row.lagSendP99)}; server ${row.serverCpu.toFixed(0)}% gen ${row.genCpu.toFixed(0)}% busy ${row.busy}\n`);
      await sleep(300);
    }
    results.push({ ...one, rates, wrong });
    await closeAll(clients);
    await sleep(500);
  }
  console.log(`RESULT ${JSON.stringify({ label: o.label, single, results, load: loadavg() })}`);
  await closeAll([ws]);
}
