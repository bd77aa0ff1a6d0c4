/*
 * Peer workloads (a) and (b): commit-to-watcher latency at fixed update
 * rates, against Herald or Triplit (--server). --jobs jobs (videos rows),
 * --per-job watcher connections per job, each subscribed to its one job;
 * one writer connection sends progress patches open loop at each target
 * rate of --rates (paced every millisecond, pipelined, at most
 * --max-inflight unanswered), --seconds measured per rate after --warmup.
 * Every rate runs, whatever happened at the one before.
 *
 * Patch s goes to job s % jobs and carries s in `updatedAt`; watcher i
 * watches job i % jobs. A watcher that receives s has seen every earlier
 * patch of its job too (a server may skip intermediate states): those count
 * as delivered at the same moment. Latency: from sending a patch to each of
 * its job's watchers receiving it, on this process's monotonic clock.
 *
 * node peers/latency.mjs --server herald|triplit [--jobs 500 --per-job 10 --rates 100,250 --seconds 3] [--out FILE]
 */
import {
  closeAll, cpuMs, fmtInt, fmtMs, now, parseArgs, percentile, rssBytes, sortedCopy, table,
} from '../lib.mjs';
import { runTarget, seqsOf, sleep, targetDefaults } from './targets.mjs';

const o = parseArgs(process.argv.slice(2), {
  ...targetDefaults,
  jobs: 500,
  perJob: 10,
  rates: '100,250,1000,2000,5000',
  seconds: 3,
  warmup: 1,
  maxInflight: 5000,
  drain: 10, // seconds to wait for the window's deliveries
  settle: 60, // seconds to wait for the writer's backlog before the next rate
  workload: 'latency',
});

await runTarget(o, o.workload, main);

async function main(target) {
  const CAP = 1 << 22;
  const sendT = new Float64Array(CAP);
  const got = new Uint16Array(CAP);
  let lat = new Float64Array(1 << 20);
  let nlat = 0;
  let winLo = -1, winHi = -1;
  const nWatch = o.jobs * o.perJob;
  const lastSeq = new Float64Array(nWatch).fill(-1);
  let subscribed = 0, others = 0, reordered = 0, skipped = 0;

  let inflight = 0, acked = 0, ackErrors = 0;
  let ackLat = new Float64Array(1 << 20), nack = 0;
  const writer = await target.openWriter((s, ok, text) => {
    inflight--;
    acked++;
    if (!ok && ackErrors++ < 5) console.error(`writer: ${String(text).slice(0, 300)}`);
    if (s >= winLo && s < winHi) {
      if (nack === ackLat.length) {
        const b = new Float64Array(ackLat.length * 2);
        b.set(ackLat);
        ackLat = b;
      }
      ackLat[nack++] = now() - sendT[s];
    }
  });
  const jobs = await writer.insertJobs(o.jobs, `lat${o.jobs}`);

  const t0 = now();
  const watchers = await target.openWatchers(nWatch, (i, t, kind, text) => {
    if (kind === 'result') return void subscribed++;
    if (kind !== 'update') {
      if (others++ < 5) console.error(`watcher ${i}: ${text.slice(0, 300)}`);
      return;
    }
    for (const seq of seqsOf(text)) {
      if (seq <= lastSeq[i]) {
        reordered++;
        continue;
      }
      let q = lastSeq[i] > 0 ? lastSeq[i] + o.jobs : seq;
      if (q < seq) skipped += (seq - q) / o.jobs;
      for (; q <= seq; q += o.jobs) {
        got[q]++;
        if (q >= winLo && q < winHi) {
          if (nlat === lat.length) {
            const b = new Float64Array(lat.length * 2);
            b.set(lat);
            lat = b;
          }
          lat[nlat++] = t - sendT[q];
        }
      }
      lastSeq[i] = seq;
    }
  });
  const connectS = (now() - t0) / 1000;
  for (let i = 0; i < nWatch; i++) target.subscribe(watchers[i], jobs[i % o.jobs]);
  for (const until = now() + 300000; subscribed < nWatch; await sleep(10))
    if (now() > until) throw new Error(`only ${subscribed} of ${nWatch} subscriptions answered in 300 s`);
  const setupS = (now() - t0) / 1000;
  process.stderr.write(`${target.name}: ${nWatch} watchers connected in ${connectS.toFixed(1)} s, subscribed in ${setupS.toFixed(1)} s\n`);
  await sleep(1000);
  const rssIdle = rssBytes(target.pid);

  const send = (s) => {
    inflight++;
    sendT[s] = now();
    writer.send(s, jobs[s % o.jobs]);
  };
  let seq = 1;
  const rows = [];
  for (const rate of o.rates.split(',').map(Number)) {
    let backlog = 0;
    for (const until = now() + o.settle * 1000; inflight > 0 && now() < until; ) await sleep(20);
    if (inflight > 0) {
      backlog = inflight;
      console.error(`${target.name} rate ${rate}: ${inflight} writes still unanswered ${o.settle} s after the previous rate; running it anyway`);
    }
    nlat = 0;
    nack = 0;
    const run = (ms, measure) =>
      new Promise((done) => {
        const start = now();
        const first = seq;
        if (measure) {
          winLo = first;
          winHi = Infinity;
        }
        const ackedAtStart = acked;
        const timer = setInterval(() => {
          const t = now();
          const due = first + Math.floor((Math.min(t - start, ms) * rate) / 1000);
          while (seq < due && inflight < o.maxInflight) send(seq++);
          if (t - start >= ms) {
            clearInterval(timer);
            if (measure) winHi = seq;
            /* Writes held back by the in-flight cap and still unsent now are dropped, never numbered. */
            done({ acked: acked - ackedAtStart, ms: t - start, notSent: Math.floor((ms * rate) / 1000) - (seq - first) });
          }
        }, 1);
      });
    await run(o.warmup * 1000, false);
    const c0 = cpuMs(target.pid), g0 = process.cpuUsage(), w0 = now();
    const r = await run(o.seconds * 1000, true);
    const c1 = cpuMs(target.pid), g1 = process.cpuUsage(), w1 = now();
    const rss = rssBytes(target.pid);
    const due = Math.floor(o.seconds * rate); // patches the target rate asked for in the window
    const stalled = r.notSent;
    const sentInWindow = winHi - winLo;
    const expected = due * o.perJob;
    let delivered = 0;
    for (const deadline = now() + o.drain * 1000; ; await sleep(20)) {
      delivered = 0;
      for (let s = winLo; s < winHi; s++) delivered += got[s];
      if (delivered >= expected || now() > deadline) break;
    }
    winLo = winHi = -1;
    const sorted = sortedCopy(lat, nlat);
    const acks = sortedCopy(ackLat, nack);
    const wall = w1 - w0;
    const row = {
      rate,
      sentPerS: (sentInWindow * 1000) / r.ms,
      ackPerS: (r.acked * 1000) / r.ms,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      p999: percentile(sorted, 99.9),
      max: sorted.length ? sorted[sorted.length - 1] : NaN,
      ackP50: percentile(acks, 50),
      delivered: delivered / expected,
      stalled,
      backlog,
      serverCpu: (c1 - c0) / wall,
      generatorCpu: (g1.user + g1.system - g0.user - g0.system) / 1000 / wall,
      rssMiB: rss / 1048576,
    };
    rows.push(row);
    process.stderr.write(`${target.name} rate ${rate}: p50 ${fmtMs(row.p50)} p99 ${fmtMs(row.p99)} ms, delivered ${(row.delivered * 100).toFixed(1)}%, ` +
      `acks ${fmtInt(row.ackPerS)}/s, server CPU ${Math.round(row.serverCpu * 100)}%, generator CPU ${Math.round(row.generatorCpu * 100)}%, ` +
      `RSS ${Math.round(row.rssMiB)} MiB${stalled ? `, ${stalled} writes not sent (in-flight cap)` : ''}\n`);
    await sleep(500);
  }

  console.log(`${target.name} (${target.storage}): ${fmtInt(nWatch)} watchers (${o.perJob} per job), ${o.jobs} jobs, ` +
    `${o.seconds} s per rate after ${o.warmup} s warm-up; setup ${setupS.toFixed(1)} s; RSS before writing ${Math.round(rssIdle / 1048576)} MiB.\n`);
  console.log(table(['target/s', 'sent/s', 'acks/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'delivered', 'server CPU', 'generator CPU', 'server RSS MiB'],
    rows.map((r) => [fmtInt(r.rate), fmtInt(r.sentPerS), fmtInt(r.ackPerS), fmtMs(r.p50), fmtMs(r.p99), fmtMs(r.p999), fmtMs(r.max),
      `${(r.delivered * 100).toFixed(1)}%`, `${Math.round(r.serverCpu * 100)}%`, `${Math.round(r.generatorCpu * 100)}%`, fmtInt(r.rssMiB)])));
  console.log(`\nchecks: ${reordered} patches received after a later one, ${fmtInt(skipped)} deliveries skipped over (a later state came first), ` +
    `${others} unexpected messages, ${ackErrors} failed writes.\n`);
  await closeAll([...watchers, writer.ws]);
  return { jobs: o.jobs, watchers: nWatch, seconds: o.seconds, setupS, rssIdleMiB: rssIdle / 1048576, reordered, skipped, others, ackErrors, rows };
}
