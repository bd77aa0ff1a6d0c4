/*
 * Peer workload (d): server memory per idle connection, against Herald or
 * Triplit (--server). RSS of the server (/proc/PID/status) with the writer
 * and one warm-up watcher, then after --conns idle connections
 * (authenticated: Herald's auth ack, Triplit's READY), then after each
 * subscribes to one of --jobs jobs (10 per job at the defaults, as in the
 * latency workloads). Each step is measured --settle ms after it finished
 * (Triplit's heap is garbage-collected: its RSS moves on its own).
 *
 * node peers/memory.mjs --server herald|triplit [--conns 5000] [--out FILE]
 */
import { anonBytes, closeAll, fmtInt, now, parseArgs, rssBytes, table } from '../lib.mjs';
import { runTarget, sleep, targetDefaults } from './targets.mjs';

const o = parseArgs(process.argv.slice(2), {
  ...targetDefaults,
  conns: 5000,
  jobs: 500,
  settle: 2000,
});

await runTarget(o, 'memory', main);

async function main(target) {
  const writer = await target.openWriter(() => {});
  const jobs = await writer.insertJobs(o.jobs, 'memory');
  let answers = 0;
  const onFrame = (i, t, kind) => {
    if (kind === 'result') answers++;
  };
  const [warm] = await target.openWatchers(1, onFrame);
  target.subscribe(warm, jobs[0], 'w');
  while (answers < 1) await sleep(10);
  answers = 0;
  await sleep(o.settle);
  const snap = () => ({ rss: rssBytes(target.pid), anon: anonBytes(target.pid) });
  const base = snap();
  const t0 = now();
  const clients = await target.openWatchers(o.conns, onFrame);
  const connectS = (now() - t0) / 1000;
  await sleep(o.settle);
  const idle = snap();
  clients.forEach((ws, i) => target.subscribe(ws, jobs[i % o.jobs]));
  for (const until = now() + 300000; answers < o.conns; await sleep(10))
    if (now() > until) throw new Error(`only ${answers} of ${o.conns} subscriptions answered in 300 s`);
  await sleep(o.settle);
  const subbed = snap();
  const per = (a, b, f) => (b[f] - a[f]) / o.conns;
  const fig = {
    conns: o.conns, jobs: o.jobs, connectS,
    baseMiB: base.rss / 1048576, idleMiB: idle.rss / 1048576, subbedMiB: subbed.rss / 1048576,
    perIdle: per(base, idle, 'rss'), perSubscribed: per(base, subbed, 'rss'), perSubscription: per(idle, subbed, 'rss'),
    perIdleAnon: per(base, idle, 'anon'), perSubscribedAnon: per(base, subbed, 'anon'),
  };
  console.log(`${target.name} (${target.storage}): ${fmtInt(o.conns)} connections; opening them took ${connectS.toFixed(1)} s.\n`);
  console.log(table(['step', 'VmRSS MiB', 'RssAnon MiB', 'Δ VmRSS bytes per connection'], [
    ['writer and one warm-up watcher', (base.rss / 1048576).toFixed(1), (base.anon / 1048576).toFixed(1), ''],
    [`${fmtInt(o.conns)} idle connections`, (idle.rss / 1048576).toFixed(1), (idle.anon / 1048576).toFixed(1), fmtInt(fig.perIdle)],
    [`+ one subscription each (${o.jobs} jobs)`, (subbed.rss / 1048576).toFixed(1), (subbed.anon / 1048576).toFixed(1), fmtInt(fig.perSubscription)],
  ]));
  console.log(`\nPer idle subscribed connection: ${fmtInt(fig.perSubscribed)} bytes of server RSS.\n`);
  await closeAll([...clients, warm, writer.ws]);
  return fig;
}
