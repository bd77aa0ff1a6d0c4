/*
 * Benchmark 2: fan-out. 10,000 connections subscribed to the same query
 * (`get` of one video: identical subscriptions share one evaluation); one
 * writer patches the video, and we time until the last connection has the
 * update. Repeated --repeat times, one write at a time.
 *
 * node fanout.mjs --herald build-release/herald --data DIR --port N [--conns 10000] [--repeat 20]
 */
import {
  benchArgs, closeAll, fmtInt, fmtMs, insertVideos, now, openMany, percentile, rssBytes, runBenchmark, schedMs,
  sleep, sortedCopy, table,
} from './lib.mjs';

const o = benchArgs(process.argv.slice(2), {
  port: 3292,
  conns: 10000,
  repeat: 20,
  gap: 200,
});

await runBenchmark(o, main, { culls: 'count' });

async function main(srv, writer) {
  const [vid] = await insertVideos(writer, 1, 'fanout');
  let subscribed = 0, wrong = 0;
  let expect = -1; // the updatedAt of the write in flight
  const arrivals = new Float64Array(o.conns);
  let n = 0;
  const marker = '"updatedAt":';
  const t0 = now();
  const clients = await openMany(srv.url, srv.key, o.conns, () => (data) => {
    const t = now();
    const s = data.toString();
    if (s.startsWith('{"type":"result"')) {
      subscribed++;
      return;
    }
    const i = s.indexOf(marker);
    if (!s.startsWith('{"type":"update"') || i < 0 || parseInt(s.slice(i + marker.length), 10) !== expect) {
      wrong++;
      if (wrong < 5) console.error(`unexpected: ${s.slice(0, 200)}`);
      return;
    }
    arrivals[n++] = t;
  });
  const sub = JSON.stringify({ type: 'sub', id: 's', query: { table: 'videos', get: vid } });
  for (const ws of clients) ws.send(sub);
  while (subscribed < o.conns) await sleep(10);
  const setupS = (now() - t0) / 1000;
  const rss = rssBytes(srv.pid);

  const rows = [];
  const last = [], median = [], first = [], ack = [], srvCpu = [], genCpu = [];
  for (let k = 1; k <= o.repeat; k++) {
    n = 0;
    expect = k;
    const c0 = schedMs(srv.pid), g0 = process.cpuUsage();
    const tSend = now();
    const answer = writer.request({ type: 'mutate', ops: [{ op: 'patch', id: vid, value: { progressPercentage: k, updatedAt: k } }] });
    let tAck = NaN;
    answer.then(() => (tAck = now()));
    const deadline = tSend + 30000;
    while (n < o.conns && now() < deadline) await sleep(1);
    await answer;
    const c1 = schedMs(srv.pid), g1 = process.cpuUsage();
    if (n < o.conns) throw new Error(`write ${k}: only ${n} of ${o.conns} connections got it in 30 s`);
    const a = sortedCopy(arrivals, n);
    first.push(a[0] - tSend);
    median.push(percentile(a, 50) - tSend);
    last.push(a[n - 1] - tSend);
    ack.push(tAck - tSend);
    srvCpu.push(c1 - c0);
    genCpu.push((g1.user + g1.system - g0.user - g0.system) / 1000);
    process.stderr.write(`write ${k}: first ${fmtMs(first.at(-1))} median ${fmtMs(median.at(-1))} last ${fmtMs(last.at(-1))} ack ${fmtMs(ack.at(-1))} server cpu ${fmtMs(srvCpu.at(-1))} ms\n`);
    await sleep(o.gap);
  }
  const s = (arr) => Float64Array.from(arr).sort();
  const row = (name, arr) => [name, fmtMs(percentile(s(arr), 50)), fmtMs(s(arr).at(-1))];
  rows.push(row('first connection has it', first));
  rows.push(row('half of the connections have it', median));
  rows.push(row('**last connection has it**', last));
  rows.push(row('writer gets its ack', ack));
  rows.push(row('server CPU time per write (ms, both threads)', srvCpu));
  rows.push(row('generator CPU time per write (ms)', genCpu));
  console.log(`Fan-out: ${fmtInt(o.conns)} connections subscribed to the same \`get\`, one patch at a time, ` +
    `${o.repeat} writes. Setup (connect, auth, subscribe) took ${setupS.toFixed(1)} s; server RSS ${Math.round(rss / 1048576)} MiB.\n`);
  console.log(table(['time from sending the mutation (ms)', 'p50', 'max'], rows));
  const perPush = (percentile(s(srvCpu), 50) * 1000) / o.conns;
  console.log(`\nServer CPU per push: ~${perPush.toFixed(1)} µs (median write's CPU / ${fmtInt(o.conns)}); ` +
    `pushes/s while fanning out: ~${fmtInt(o.conns / (percentile(s(last), 50) / 1000))}. ${wrong} unexpected messages.`);
  if (wrong) console.log('**CHECK FAILED: unexpected messages**');
  await closeAll([...clients, writer.ws]);
}
