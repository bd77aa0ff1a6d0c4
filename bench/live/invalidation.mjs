/*
 * Benchmark 3: invalidation cost. The server's CPU per commit when a commit
 * touches one watched document, with 100 subscriptions in all and with
 * 100,000 (distinct documents, 100 connections x 1,000 subscriptions), on
 * the same 100,000-document table and the same 100 connections. Finding
 * the affected subscriptions goes through the read-set index, so the cost
 * should be nearly flat.
 *
 * Phases alternate: 100 subscriptions, 100,000, back to 100 (after
 * unsubscribing), ... (--cycles), so that a disk or a neighbour that changes
 * speed during the run shows up in both cases. In each phase, --commits patches of one document, one at a time (each its own
 * durable commit), then the same with --window patches in flight (groups).
 * CPU: utime + stime of all server threads (/proc/PID/stat, 10 ms ticks)
 * and the schedstat run time (ns).
 *
 * node invalidation.mjs --herald build-release/herald --data DIR --port N
 */
import {
  anonBytes, benchArgs, closeAll, cpuMs, fmtInt, insertVideos, now, openMany, percentile, runBenchmark,
  schedMs, sleep, table,
} from './lib.mjs';

const o = benchArgs(process.argv.slice(2), {
  port: 3293,
  docs: 100000,
  conns: 100,
  commits: 1000,
  window: 64,
  cycles: 2,
  noSync: false,
});

await runBenchmark(o, main, { pre: o.noSync ? ['--no-sync'] : [] });

async function main(srv, writer) {
  let t = now();
  const ids = await insertVideos(writer, o.docs, 'inval');
  const insertS = (now() - t) / 1000;
  const per = o.docs / o.conns;
  const hot = ids[0]; // watched by subscription 0 of connection 0

  let answers = 0, errors = 0, updates = 0, lastSeq = 0, seqErrors = 0;
  const clients = await openMany(srv.url, srv.key, o.conns, (j) => (data) => {
    const m = JSON.parse(data);
    if (m.type === 'result' || m.type === 'ack') answers++;
    else if (m.type === 'update') {
      for (const ch of m.changes) {
        if (j !== 0 || ch.id !== 'k0') errors++;
        const s = ch.diff && ch.diff.o && ch.diff.o.s ? ch.diff.o.s.updatedAt : -1;
        if (s <= lastSeq) seqErrors++;
        lastSeq = s;
        updates++;
      }
    } else {
      errors++;
      if (errors < 5) console.error(`client ${j}: ${data}`);
    }
  });

  /* Subscribes connection j to documents j*per + [from, to). */
  const subscribe = async (from, to, type = 'sub') => {
    const t0 = now();
    const before = answers;
    let n = 0;
    for (let j = 0; j < o.conns; j++)
      for (let k = from; k < to; k++, n++)
        clients[j].send(type === 'sub'
          ? `{"type":"sub","id":"k${k}","query":{"table":"videos","get":"${ids[j * per + k]}"}}`
          : `{"type":"unsub","id":"k${k}"}`);
    while (answers - before < n) await sleep(5);
    return { n, s: (now() - t0) / 1000 };
  };

  let seq = 0;
  const commitRun = async (window) => {
    const c0 = cpuMs(srv.pid), s0 = schedMs(srv.pid), w0 = now();
    const u0 = updates;
    let sent = 0, done = 0;
    await new Promise((resolve) => {
      const one = () => {
        if (sent === o.commits) return;
        sent++;
        const s = ++seq;
        writer.request({ type: 'mutate', ops: [{ op: 'patch', id: hot, value: { progressPercentage: s % 101, updatedAt: s } }] }).then((a) => {
          if (a.type !== 'ack') errors++;
          done++;
          if (done === o.commits) resolve();
          else one();
        });
      };
      for (let i = 0; i < window; i++) one();
    });
    const c1 = cpuMs(srv.pid), s1 = schedMs(srv.pid), w1 = now();
    /* The last commit's update reached the watcher (acks follow updates, but on another socket). */
    const deadline = now() + 5000;
    while (lastSeq !== seq && now() < deadline) await sleep(5);
    if (lastSeq !== seq) errors++;
    const got = updates - u0;
    return { statUs: ((c1 - c0) * 1000) / o.commits, schedUs: ((s1 - s0) * 1000) / o.commits, rate: (o.commits * 1000) / (w1 - w0), got };
  };

  const phases = [];
  const mem = [`${Math.round(anonBytes(srv.pid) / 1048576)} MiB before subscribing`];
  const few = `${fmtInt(o.conns)} subscriptions`, many = `${fmtInt(o.conns * per)} subscriptions`;
  const measure = async (name) => {
    phases.push({ name, seq1: await commitRun(1), seqW: await commitRun(o.window) });
    mem.push(`${Math.round(anonBytes(srv.pid) / 1048576)} MiB with ${name}`);
  };
  const a = await subscribe(0, 1);
  await measure(few);
  const subTimes = [], unsubTimes = [], perSub = [];
  for (let c = 0; c < o.cycles; c++) {
    const m0 = anonBytes(srv.pid);
    const b = await subscribe(1, per);
    perSub.push((anonBytes(srv.pid) - m0) / b.n);
    subTimes.push(b);
    await measure(many);
    unsubTimes.push(await subscribe(1, per, 'unsub'));
    await measure(few);
  }

  console.log(`Invalidation: ${fmtInt(o.docs)} videos (inserted in ${insertS.toFixed(1)} s), ${o.conns} connections, ` +
    `${o.noSync ? '**--no-sync** (no fsync: the CPU alone)' : 'durable commits'}; each commit patches one document that exactly one subscription watches; ` +
    `${fmtInt(o.commits)} commits per cell. "1 in flight": one patch at a time, each its own commit; ` +
    `"${o.window} in flight": pipelined, so commits are grouped. Phases in the order run.\n`);
  const rows = [];
  for (const p of phases)
    for (const [label, r] of [['1 in flight', p.seq1], [`${o.window} in flight`, p.seqW]])
      rows.push([p.name, label, fmtInt(r.rate), fmtInt(r.schedUs), fmtInt(r.statUs), fmtInt(r.got)]);
  console.log(table(['subscriptions', 'writer', 'commits/s', 'server CPU µs/commit (schedstat)', 'server CPU µs/commit (stat ticks)', 'updates the watcher received'], rows));
  const med = (name, k) => percentile(Float64Array.from(phases.filter((p) => p.name === name).map((p) => p[k].schedUs)).sort(), 50);
  const ratio = (k) => med(many, k) / med(few, k);
  console.log(`\n**Ratio of server CPU per commit, ${many} / ${few}** (medians of the phases, schedstat): ` +
    `**${ratio('seq1').toFixed(2)}** one at a time (${fmtInt(med(many, 'seq1'))} / ${fmtInt(med(few, 'seq1'))} µs), ` +
    `**${ratio('seqW').toFixed(2)}** with ${o.window} in flight (${fmtInt(med(many, 'seqW'))} / ${fmtInt(med(few, 'seqW'))} µs).`);
  console.log(`Subscribing ${fmtInt(subTimes[0].n)}: ${subTimes.map((b) => `${b.s.toFixed(1)} s (${fmtInt(b.n / b.s)}/s)`).join(', ')}; ` +
    `unsubscribing them: ${unsubTimes.map((u) => `${u.s.toFixed(1)} s`).join(', ')}. ` +
    `Server anonymous RSS (RssAnon): ${mem.join(', ')}; ${perSub.map((x) => fmtInt(x)).join(' / ')} bytes per subscription added.`);
  console.log(`${errors} errors, ${seqErrors} out-of-order updates.`);
  if (errors || seqErrors) console.log('**CHECK FAILED**');
  await closeAll([...clients, writer.ws]);
}
