/*
 * Reproduction (not a benchmark): every HTTP request on a keep-alive
 * connection leaves a connection record behind (LWS_CALLBACK_HTTP makes a
 * new one with conn_new() for each transaction; the old one is never freed
 * and stays on the server's connection list, which check_laggards() walks
 * on every wake-up). Server memory grows per request, and the CPU cost of a
 * WebSocket commit grows with the number of HTTP requests ever served.
 *
 * node repro_http_leak.mjs [--herald build-release/herald] [--requests 50000]
 * Exit status 1 if the commit cost grew more than 3 times.
 */
import http from 'node:http';
import { closeAll, now, openWriter, parseArgs, rssBytes, schedMs, startServer } from './lib.mjs';

const o = parseArgs(process.argv.slice(2), {
  herald: 'build-release/herald',
  data: 'build-release/bench-live-leak',
  port: 3290,
  requests: 50000,
});
const srv = await startServer({ herald: o.herald, dataDir: o.data, port: o.port, pre: ['--no-sync'] });
const w = await openWriter(srv.url, srv.key);
const id = (await w.request({ type: 'mutate', ops: [{ op: 'insert', table: 'videos', value: { twitchId: '1', title: 't', status: 'Q' } }] })).value[0];
/* Server CPU per WebSocket commit, 2,000 commits one at a time. */
const wsCost = async () => {
  const c0 = schedMs(srv.pid);
  for (let i = 0; i < 2000; i++) await w.request({ type: 'mutate', ops: [{ op: 'patch', id, value: { updatedAt: i } }] });
  return ((schedMs(srv.pid) - c0) * 1000) / 2000;
};
const agents = Array.from({ length: 32 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
const body = JSON.stringify({ ops: [{ op: 'patch', id, value: { progressPercentage: 1 } }] });
const post = (agent) => new Promise((resolve) => {
  const r = http.request({ host: '127.0.0.1', port: o.port, path: '/api/mutation', method: 'POST', agent,
    headers: { Authorization: `Bearer ${srv.key}`, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
    res.resume();
    res.on('end', resolve);
  });
  r.end(body);
});
const mib = () => (rssBytes(srv.pid) / 1048576).toFixed(1);
const before = await wsCost();
console.log(`0 HTTP requests: server RSS ${mib()} MiB, ${before.toFixed(0)} µs of server CPU per WebSocket commit`);
let after = before;
for (let done = 0, step = o.requests / 2; done < o.requests; ) {
  const t0 = now();
  await Promise.all(agents.map(async (a) => { for (let i = 0; i < step / 32; i++) await post(a); }));
  done += step;
  after = await wsCost();
  console.log(`${done} HTTP requests (${Math.round(step / ((now() - t0) / 1000))}/s): server RSS ${mib()} MiB, ` +
    `${after.toFixed(0)} µs of server CPU per WebSocket commit`);
}
agents.forEach((a) => a.destroy());
await closeAll([w.ws]);
await srv.stop();
process.exit(after > 3 * before ? 1 : 0);
