/*
 * Benchmark 6: can slow queries stall other clients? A copy of the
 * twitch-jobs app with one more query function that burns CPU (calibrated
 * to --ms per call); a pinger's round trips (`ping`, one at a time) with the
 * server idle, then while --clients connections each call the slow query
 * in a loop (the next call when the last is answered), then idle again.
 *
 * node stall.mjs --herald build-release/herald --data DIR [--ms 200] [--clients 4] [--seconds 5]
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  benchArgs, closeAll, fmtInt, fmtMs, now, openClient, percentile, root, runBenchmark, sleep, table,
} from './lib.mjs';

const o = benchArgs(process.argv.slice(2), {
  port: 3296,
  ms: 200,
  clients: 4,
  seconds: 5,
});

const app = mkdtempSync(join(tmpdir(), 'herald-stall-app-'));
cpSync(join(root, 'examples', 'twitch-jobs'), app, { recursive: true });
writeFileSync(join(app, 'functions', 'slow.lua'), `
local M = {}
M.burn = herald.query{args = {n = v.number()}, handler = function(ctx, a)
  local x = 0
  for i = 1, a.n do x = (x * 31 + i) % 1000003 end
  return x
end}
return M
`);
process.on('exit', () => rmSync(app, { recursive: true, force: true }));

await runBenchmark({ ...o, serverArgs: `--fn-instructions 2000000000 ${o.serverArgs}`.trim() }, main,
  { pre: ['--app', app] });

/* One request at a time on one connection: resolves with the answer. */
function caller(ws) {
  let pending = null;
  ws.on('message', (d) => {
    const r = pending;
    pending = null;
    if (r) r(JSON.parse(d));
  });
  let k = 0;
  return (msg) => new Promise((r) => {
    pending = r;
    ws.send(JSON.stringify({ ...msg, id: `c${k++}` }));
  });
}

async function pings(call, seconds) {
  const rtt = [];
  const end = now() + seconds * 1000;
  while (now() < end) {
    const t0 = now();
    await call({ type: 'ping' });
    rtt.push(now() - t0);
    await sleep(2);
  }
  rtt.sort((a, b) => a - b);
  return { n: rtt.length, p50: percentile(rtt, 50), p99: percentile(rtt, 99), max: rtt[rtt.length - 1] };
}

async function main(srv) {
  const pinger = await openClient(srv.url, srv.key, () => {});
  const ping = caller(pinger);
  const workers = [];
  for (let i = 0; i < o.clients; i++) workers.push(caller(await openClient(srv.url, srv.key, () => {})));
  /* Calibrate: iterations for --ms of CPU (the call runs on an evaluator thread once slow). */
  let n = 2_000_000;
  for (let k = 0; k < 3; k++) {
    const t0 = now();
    const a = await workers[0]({ type: 'query', path: 'slow:burn', args: { n } });
    if (a.type !== 'result') throw new Error(`slow:burn: ${JSON.stringify(a)}`);
    n = Math.round(n * o.ms / Math.max(1, now() - t0));
  }
  const t0 = now();
  await workers[0]({ type: 'query', path: 'slow:burn', args: { n } });
  const callMs = now() - t0;

  const idle = await pings(ping, o.seconds);
  let stop = false, calls = 0;
  const loops = workers.map(async (w) => {
    while (!stop) {
      const a = await w({ type: 'query', path: 'slow:burn', args: { n } });
      if (a.type !== 'result') throw new Error(`slow:burn: ${JSON.stringify(a)}`);
      calls++;
    }
  });
  await sleep(300);
  const busy = await pings(ping, o.seconds);
  stop = true;
  await Promise.all(loops);
  const after = await pings(ping, o.seconds);

  console.log(`A slow call: ${fmtMs(callMs)} ms alone (${fmtInt(n)} iterations); ${o.clients} clients calling it in a loop completed ${fmtInt(calls)} calls in ~${o.seconds} s.\n`);
  console.log(table(['pinger, one ping at a time', 'pings', 'p50 ms', 'p99 ms', 'max ms', 'p99 / idle p99'], [
    ['idle', fmtInt(idle.n), fmtMs(idle.p50), fmtMs(idle.p99), fmtMs(idle.max), '1.00'],
    [`${o.clients} clients running the slow query`, fmtInt(busy.n), fmtMs(busy.p50), fmtMs(busy.p99), fmtMs(busy.max), (busy.p99 / idle.p99).toFixed(2)],
    ['idle again', fmtInt(after.n), fmtMs(after.p50), fmtMs(after.p99), fmtMs(after.max), (after.p99 / idle.p99).toFixed(2)],
  ], ['l', 'r', 'r', 'r', 'r', 'r']));
  await closeAll([pinger]);
}
