/*
 * Peer workload (c): fan-out, against Herald or Triplit (--server). --conns
 * watcher connections all subscribed to the same job (one videos row); one
 * writer patches it, and we time until the last watcher has the patch.
 * --repeat writes, one at a time, --gap ms apart. The run fails if the
 * subscriptions are not all answered within --setup-timeout seconds or a
 * write does not reach every watcher within 30 s.
 *
 * node peers/fanout.mjs --server herald|triplit [--conns 10000] [--repeat 20] [--out FILE]
 */
import { closeAll, fmtInt, fmtMs, now, parseArgs, percentile, rssBytes, schedMs, sortedCopy } from '../lib.mjs';
import { runTarget, seqsOf, sleep, targetDefaults } from './targets.mjs';

const o = parseArgs(process.argv.slice(2), {
  ...targetDefaults,
  conns: 10000,
  repeat: 20,
  gap: 200,
  setupTimeout: 300,
  wave: 200,
});

await runTarget(o, 'fanout', main);

async function main(target) {
  let answered = null;
  const writer = await target.openWriter((s, ok, text) => answered && answered(ok, text));
  const [job] = await writer.insertJobs(1, 'fanout');
  let subscribed = 0, wrong = 0;
  let expect = -1;
  const arrivals = new Float64Array(o.conns);
  let n = 0;
  const t0 = now();
  const watchers = await target.openWatchers(o.conns, (i, t, kind, text) => {
    if (kind === 'result') return void subscribed++;
    const seqs = kind === 'update' ? seqsOf(text) : [];
    if (seqs.at(-1) !== expect) {
      if (wrong++ < 5) console.error(`unexpected: ${text.slice(0, 200)}`);
      return;
    }
    arrivals[n++] = t;
  }, o.wave);
  const connectS = (now() - t0) / 1000;
  for (const ws of watchers) target.subscribe(ws, job);
  for (const until = now() + o.setupTimeout * 1000; subscribed < o.conns; await sleep(10))
    if (now() > until || target.exited()) throw new Error(`only ${subscribed} of ${o.conns} subscriptions answered in ${o.setupTimeout} s`);
  const setupS = (now() - t0) / 1000;
  process.stderr.write(`${target.name}: ${o.conns} watchers connected in ${connectS.toFixed(1)} s, subscribed in ${setupS.toFixed(1)} s\n`);
  await sleep(1000);
  const rss = rssBytes(target.pid);

  const first = [], median = [], last = [], ack = [], srvCpu = [];
  for (let k = 1; k <= o.repeat; k++) {
    n = 0;
    expect = k;
    const c0 = schedMs(target.pid);
    const tSend = now();
    let tAck = NaN;
    const acked = new Promise((r) => (answered = (ok, text) => {
      tAck = now();
      if (!ok) console.error(`write ${k} failed: ${String(text).slice(0, 300)}`);
      r();
    }));
    writer.send(k, job);
    for (const deadline = tSend + 30000; n < o.conns && now() < deadline; ) await sleep(1);
    await Promise.race([acked, sleep(10000)]);
    const c1 = schedMs(target.pid);
    if (n < o.conns) throw new Error(`write ${k}: only ${n} of ${o.conns} watchers got it in 30 s`);
    const a = sortedCopy(arrivals, n);
    first.push(a[0] - tSend);
    median.push(percentile(a, 50) - tSend);
    last.push(a[n - 1] - tSend);
    ack.push(tAck - tSend);
    srvCpu.push(c1 - c0);
    process.stderr.write(`${target.name} write ${k}: first ${fmtMs(first.at(-1))} median ${fmtMs(median.at(-1))} last ${fmtMs(last.at(-1))} ` +
      `ack ${fmtMs(ack.at(-1))} server CPU ${fmtMs(srvCpu.at(-1))} ms\n`);
    await sleep(o.gap);
  }
  const med = (arr) => percentile(Float64Array.from(arr).sort(), 50);
  const max = (arr) => Math.max(...arr);
  const fig = {
    conns: o.conns, repeat: o.repeat, setupS, rssMiB: rss / 1048576, wrong,
    firstP50: med(first), medianP50: med(median), lastP50: med(last), lastMax: max(last), ackP50: med(ack), cpuP50: med(srvCpu),
  };
  console.log(`${target.name} (${target.storage}): ${fmtInt(o.conns)} watchers of one row, ${o.repeat} writes; setup ${setupS.toFixed(1)} s, ` +
    `RSS ${Math.round(fig.rssMiB)} MiB; last watcher has it after p50 ${fmtMs(fig.lastP50)} ms (max ${fmtMs(fig.lastMax)}), ` +
    `first ${fmtMs(fig.firstP50)}, half ${fmtMs(fig.medianP50)}, ack ${fmtMs(fig.ackP50)}, server CPU per write ${fmtMs(fig.cpuP50)} ms; ${wrong} unexpected messages.\n`);
  await closeAll([...watchers, writer.ws]);
  return fig;
}
