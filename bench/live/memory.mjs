/*
 * Benchmark 4: server memory per idle subscriber connection. RSS of the
 * server (/proc/PID/status) before and after opening --conns idle
 * WebSocket connections (authenticated), after each subscribes once (`get`
 * of one of 500 videos, 10 connections per video as in the latency
 * benchmark), after each adds a subscription to a document of its own, and
 * after they close.
 *
 * node memory.mjs --herald build-release/herald --data DIR --port N [--conns 5000]
 */
import {
  anonBytes, benchArgs, closeAll, fmtInt, insertVideos, openMany, rssBytes, runBenchmark, sleep, table,
} from './lib.mjs';

const o = benchArgs(process.argv.slice(2), {
  port: 3294,
  conns: 5000,
  jobs: 500,
});

await runBenchmark(o, main);

async function main(srv, writer) {
  const vids = await insertVideos(writer, Math.max(o.jobs, o.conns), 'memory');
  /* One warm-up connection with a subscription, so that one-time allocations are in the baseline. */
  const [warm] = await openMany(srv.url, srv.key, 1, () => () => {});
  warm.send(JSON.stringify({ type: 'sub', id: 'w', query: { table: 'videos', get: vids[0] } }));
  await sleep(500);
  const snap = () => ({ rss: rssBytes(srv.pid), anon: anonBytes(srv.pid), data: rssBytes(srv.pid, 'VmData') });
  const steps = [['baseline (server, writer and one warm-up connection)', snap()]];

  let answers = 0;
  let clients = await openMany(srv.url, srv.key, o.conns, () => (data) => {
    if (data.toString().startsWith('{"type":"result"')) answers++;
  });
  await sleep(500);
  steps.push([`${fmtInt(o.conns)} idle connections, authenticated`, snap()]);

  const subAll = async (id, pick) => {
    const before = answers;
    clients.forEach((ws, i) => ws.send(JSON.stringify({ type: 'sub', id, query: { table: 'videos', get: vids[pick(i)] } })));
    while (answers - before < o.conns) await sleep(10);
    await sleep(500);
  };
  await subAll('s1', (i) => i % o.jobs);
  steps.push([`+ one subscription each (\`get\`, ${o.jobs} distinct videos: shared)`, snap()]);
  await subAll('s2', (i) => i);
  steps.push([`+ a second subscription each (${fmtInt(o.conns)} distinct videos)`, snap()]);
  await closeAll(clients);
  await sleep(1000);
  steps.push(['all closed', snap()]);
  /* Once more: memory that is reused rather than grown again is not leaked. */
  clients = await openMany(srv.url, srv.key, o.conns, () => (data) => {
    if (data.toString().startsWith('{"type":"result"')) answers++;
  });
  await subAll('s1', (i) => i % o.jobs);
  await subAll('s2', (i) => i);
  steps.push([`the same ${fmtInt(o.conns)} connections and subscriptions again`, snap()]);
  await closeAll(clients);
  await sleep(1000);
  steps.push(['all closed again', snap()]);

  const rows = [];
  for (let k = 0; k < steps.length; k++) {
    const [name, m] = steps[k];
    const prev = k ? steps[k - 1][1] : null;
    const per = (f) => (prev && k < 4 ? fmtInt((m[f] - prev[f]) / o.conns) : '');
    rows.push([name, (m.rss / 1048576).toFixed(1), (m.anon / 1048576).toFixed(1), (m.data / 1048576).toFixed(0), per('rss'), per('anon')]);
  }
  const idle = (steps[1][1].rss - steps[0][1].rss) / o.conns;
  const withSub = (steps[2][1].rss - steps[0][1].rss) / o.conns;
  console.log(`Memory: ${fmtInt(o.conns)} WebSocket connections from the load generator, idle except for what the table says.\n`);
  console.log(table(['step', 'VmRSS MiB', 'RssAnon MiB', 'VmData MiB', 'Δ VmRSS bytes per connection', 'Δ RssAnon bytes per connection'], rows));
  console.log(`\nPer idle connection: ${fmtInt(idle)} bytes (${(idle / 1024).toFixed(1)} KiB) of server RSS; with one subscription: ` +
    `${fmtInt(withSub)} bytes (${(withSub / 1024).toFixed(1)} KiB). LIMITS.md: ~5.5 KiB per idle lws 4.1 connection. ` +
    `(Kernel socket buffers are not in RSS.)`);
  const again = (steps[5][1].rss - steps[4][1].rss) / o.conns;
  console.log(`\nClosing them gives nothing back, and the same connections once more grew RSS by another ${fmtInt(again)} bytes each: ` +
    `each WebSocket gets a receive buffer of the protocol's rx_buffer_size (src/server.c) from lws, ` +
    `of which a fresh heap has touched only a page or two; reused heap gets touched elsewhere, so with connections coming and going ` +
    `RSS creeps toward VmData per connection at the peak (VmData above: ${fmtInt((steps[1][1].data - steps[0][1].data) / o.conns)} bytes per connection).`);
  await closeAll([warm, writer.ws]);
}
