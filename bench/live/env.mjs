/*
 * The state of the machine during a run, measured the way LIMITS.md
 * measures it: the fdatasync rate of the disk under the data folder, and
 * the round trip of a `ping` to an idle server (server on core 0, this
 * process on core 1): the floors the live benchmarks sit on.
 *
 * node env.mjs --herald build-release/herald --data DIR --port N
 */
import { fmtInt, parseArgs, pingRtt, fsyncRate, startServer } from './lib.mjs';

const o = parseArgs(process.argv.slice(2), {
  herald: 'build-release/herald',
  data: 'build-release/bench-live-data',
  port: 3295,
});
const fs = await fsyncRate(o.data + '-probe', 1000);
const srv = await startServer({ herald: o.herald, dataDir: o.data, port: o.port });
let rtt;
try {
  await pingRtt(srv.url, srv.key, 200); // warm-up
  rtt = await pingRtt(srv.url, srv.key, 2000);
} finally {
  await srv.stop();
}
console.log(`- disk: ${fmtInt(fs)} fdatasync/s of a 4 KiB overwrite (LIMITS.md: ~4,400/s)`);
console.log(`- \`ping\` round trip to an idle Herald, one connection, cross-core: p50 ${(rtt.p50 * 1000).toFixed(0)} µs, ` +
  `p99 ${(rtt.p99 * 1000).toFixed(0)} µs (LIMITS.md, raw loopback: p50 ~390 µs, p99 ~2 ms)`);
