/*
 * Benchmark 1: commit-to-client latency and the highest sustained update
 * rate. 500 jobs (videos), 10 watcher connections per job, each subscribed
 * to its video (`videos:getJobById`, or `--query get`); a writer pushes progress patches at increasing
 * target rates (open loop, paced every millisecond), over one WebSocket
 * (mutate messages, pipelined) or over HTTP keep-alive connections.
 *
 * Every patch carries its sequence number in `updatedAt`; a watcher that
 * receives an update reads the number back from the diff, so the latency
 * is (receive time - send time) of that very mutation, on one clock.
 *
 * --protocol sync: the watchers speak Convex's sync protocol instead
 * (/api/<version>/sync: Connect, Authenticate as the admin, one
 * ModifyQuerySet adding the query; Transitions carry whole values, and the
 * number is read from the new value). The writer stays the same native
 * WebSocket, so the two runs differ only in the watchers' codec.
 *
 * --query list: every watcher (--watchers of them) subscribes to
 * `videos:list` (the dashboard: the newest 200 videos), and every patch
 * changes one of the --jobs videos in it: a large result where one
 * document's field changes, to show what a whole value costs against a diff.
 *
 * Both count the bytes of the frames the watchers receive after their
 * first result (payload plus WebSocket header), per frame and per update
 * delivered to one watcher.
 *
 * node latency.mjs --herald build-release/herald --data DIR --port N [--rates 500,1000,...]
 *   [--protocol native|sync] [--query fn|get|list [--watchers N]]
 */
import http from 'node:http';
import {
  benchArgs, closeAll, cpuMs, fmtInt, fmtMs, frameBytes, insertVideos, now, openMany, openSyncClient, percentile, rssBytes,
  runBenchmark, schedMs, sleep, sortedCopy, table,
} from './lib.mjs';

const o = benchArgs(process.argv.slice(2), {
  port: 3291,
  jobs: 500,
  perJob: 10,
  rates: '250,500,1000,2000,4000,6000,8000,12000,16000',
  seconds: 3,
  warmup: 1,
  maxInflight: 5000,
  p99Limit: 100,
  writer: 'ws', // or http
  httpConns: 32,
  httpPool: false, // one agent for all connections: a video's patches may commit out of send order
  keepGoing: false, // run every rate even after one fails
  query: 'fn', // watchers call videos:getJobById (the app's query function); 'get': a raw get; 'list': videos:list
  protocol: 'native', // the watchers' protocol: 'native' (/ws, diffs) or 'sync' (Convex's, whole values)
  watchers: 20, // --query list: how many watchers of the one list
});
if (!['native', 'sync'].includes(o.protocol)) throw new Error('--protocol is native or sync');
if (!['fn', 'get', 'list'].includes(o.query)) throw new Error('--query is fn, get or list');
if (o.protocol === 'sync' && o.query === 'get') throw new Error('the sync protocol subscribes to functions only');
/* videos:list is the newest 200: every patched video must be in it. */
if (o.query === 'list' && o.jobs > 200) throw new Error('--query list needs --jobs 200 or fewer');
const LIST = o.query === 'list';

await runBenchmark(o, main, { culls: 'tail' });

async function main(srv, writer) {
  const vids = await insertVideos(writer, o.jobs, 'latency');
  const nWatch = LIST ? o.watchers : o.jobs * o.perJob;
  /* Watchers that each mutation reaches, and the distance between two mutations of the same result. */
  const fan = LIST ? nWatch : o.perJob;
  const step = LIST ? 1 : o.jobs;

  /* Per mutation: send time, how many watchers got it. */
  const CAP = 1 << 22;
  const sendT = new Float64Array(CAP);
  const got = new Uint16Array(CAP);
  let lat = new Float64Array(1 << 20);
  let nlat = 0;
  let winLo = -1, winHi = -1; // mutations [winLo, winHi) are measured
  const lastVersion = new Float64Array(nWatch);
  const lastSeq = new Float64Array(nWatch).fill(-1);
  let versionErrors = 0, seqErrors = 0, superseded = 0, merged = 0, otherChanges = 0, subscribed = 0, errors = 0;

  /* Frames and their bytes on the wire after each watcher's first result; deliveries counted in got[]. */
  let rxFrames = 0, rxBytes = 0, deliveries = 0;

  /* The sequence number a result shows: a video's updatedAt, or the newest in the list. */
  const seqOfValue = (v) => {
    if (!LIST) return v ? v.updatedAt : undefined;
    let best;
    if (Array.isArray(v)) for (const d of v) if (typeof d.updatedAt === 'number' && !(d.updatedAt <= best)) best = d.updatedAt;
    return best;
  };
  const seqOfDiff = (d) => {
    if (!LIST) return d.o && d.o.s ? d.o.s.updatedAt : undefined;
    let best;
    if (d.a && d.a.c) for (const [, p] of d.a.c) if (p.s && typeof p.s.updatedAt === 'number' && !(p.s.updatedAt <= best)) best = p.s.updatedAt;
    return best;
  };

  /* Watcher i received a state showing mutation `seq` at time t. */
  const deliver = (i, seq, t, what) => {
    if (typeof seq !== 'number') {
      otherChanges++;
      return;
    }
    if (seq <= lastSeq[i]) {
      if (o.httpPool) return; // commit order is not send order here
      seqErrors++;
      if (seqErrors <= 5) console.error(`watcher ${i}: patch ${seq} after ${lastSeq[i]}: ${what().slice(0, 300)}`);
      return;
    }
    /* Mutations of this result that this update skipped (two in one group: the client
     * sees the last) became visible now too: same latency accounting. */
    let q = lastSeq[i] > 0 ? lastSeq[i] + step : seq;
    if (q < seq) superseded += (seq - q) / step;
    for (; q <= seq; q += step) {
      got[q]++;
      deliveries++;
      if (q >= winLo && q < winHi) {
        if (nlat === lat.length) {
          const bigger = new Float64Array(lat.length * 2);
          bigger.set(lat);
          lat = bigger;
        }
        lat[nlat++] = t - sendT[q];
      }
    }
    lastSeq[i] = seq;
  };

  const native = (i) => (data) => {
    const t = now();
    const m = JSON.parse(data);
    if (m.type === 'result') {
      subscribed++;
      return;
    }
    if (m.type !== 'update') {
      errors++;
      if (errors < 5) console.error(`watcher ${i}: ${data}`);
      return;
    }
    rxFrames++;
    rxBytes += frameBytes(data.length);
    if (m.version <= lastVersion[i]) {
      versionErrors++;
      if (versionErrors <= 5) console.error(`watcher ${i}: version ${m.version} after ${lastVersion[i]}: ${data}`);
    }
    lastVersion[i] = m.version;
    for (const ch of m.changes) {
      let seq;
      if (ch.diff) {
        seq = seqOfDiff(ch.diff);
      } else if (ch.value) {
        seq = seqOfValue(ch.value);
        merged++;
      }
      deliver(i, seq, t, () => String(data));
    }
  };

  /* Convex's sync protocol: each Transition must start where the last one ended (the
   * official client's check, counted as a version error); values are whole. */
  const lastEnd = new Array(nWatch).fill('0/0/AAAAAAAAAAA=');
  const gotFirst = new Uint8Array(nWatch);
  const sync = (i) => (data) => {
    const t = now();
    const m = JSON.parse(data);
    if (m.type === 'Ping') return;
    if (m.type !== 'Transition') {
      errors++;
      if (errors < 5) console.error(`watcher ${i}: ${data}`);
      return;
    }
    const sv = m.startVersion, ev = m.endVersion;
    if (`${sv.querySet}/${sv.identity}/${sv.ts}` !== lastEnd[i]) {
      versionErrors++;
      if (versionErrors <= 5) console.error(`watcher ${i}: Transition from ${JSON.stringify(sv)} after ${lastEnd[i]}`);
    }
    lastEnd[i] = `${ev.querySet}/${ev.identity}/${ev.ts}`;
    if (gotFirst[i]) {
      rxFrames++;
      rxBytes += frameBytes(data.length);
    }
    for (const mod of m.modifications) {
      if (mod.type !== 'QueryUpdated' || mod.queryId !== 0) {
        errors++;
        if (errors < 5) console.error(`watcher ${i}: ${JSON.stringify(mod).slice(0, 300)}`);
        continue;
      }
      if (!gotFirst[i]) {
        gotFirst[i] = 1;
        subscribed++;
        continue;
      }
      deliver(i, seqOfValue(mod.value), t, () => String(data));
    }
  };

  const t0 = now();
  const watchers = o.protocol === 'sync'
    ? await openMany(srv.syncUrl, srv.key, nWatch, sync, 200, {}, openSyncClient)
    : await openMany(srv.url, srv.key, nWatch, native);
  const args = (i) => (LIST ? {} : { jobId: `job-${i % o.jobs}` });
  const path = LIST ? 'videos:list' : 'videos:getJobById';
  for (let i = 0; i < nWatch; i++)
    watchers[i].send(JSON.stringify(o.protocol === 'sync'
      ? { type: 'ModifyQuerySet', baseVersion: 0, newVersion: 1, modifications: [{ type: 'Add', queryId: 0, udfPath: path, args: [args(i)] }] }
      : o.query === 'get'
        ? { type: 'sub', id: 's1', query: { table: 'videos', get: vids[i % o.jobs] } }
        : { type: 'sub', id: 's1', path, args: args(i) }));
  while (subscribed < nWatch) await sleep(10);
  const setupS = (now() - t0) / 1000;

  /* The writer: one WebSocket with pipelined mutates, or HTTP keep-alive. */
  let seq = 1; // updatedAt 0 is the inserted state
  let inflight = 0, acked = 0, ackErrors = 0;
  let ackLat = new Float64Array(1 << 20), nack = 0;
  const onAck = (s, ok) => {
    inflight--;
    acked++;
    if (!ok) ackErrors++;
    if (s >= winLo && s < winHi) {
      if (nack === ackLat.length) {
        const b = new Float64Array(ackLat.length * 2);
        b.set(ackLat);
        ackLat = b;
      }
      ackLat[nack++] = now() - sendT[s];
    }
  };
  const patch = (s) => [{ op: 'patch', id: vids[s % o.jobs], value: { progressPercentage: s % 101, updatedAt: s } }];
  let send;
  if (o.writer === 'ws') {
    const ws = writer.ws;
    ws.removeAllListeners('message');
    ws.on('message', (data) => {
      const m = JSON.parse(data);
      onAck(Number(m.id), m.type === 'ack');
      if (m.type !== 'ack' && ackErrors < 5) console.error(`writer: ${data}`);
    });
    send = (s) => {
      sendT[s] = now();
      ws.send(`{"type":"mutate","id":"${s}","ops":${JSON.stringify(patch(s))}}`);
    };
  } else {
    /* One keep-alive connection per agent, video v always on agent v % httpConns: the
     * patches of one video are committed in the order they were sent. */
    const agents = o.httpPool ? [new http.Agent({ keepAlive: true, maxSockets: o.httpConns })]
      : Array.from({ length: o.httpConns }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    send = (s) => {
      const agent = agents[(s % o.jobs) % agents.length];
      const body = JSON.stringify({ ops: patch(s) });
      sendT[s] = now();
      const req = http.request({
        host: '127.0.0.1', port: o.port, path: '/api/mutation', method: 'POST', agent,
        headers: { Authorization: `Bearer ${srv.key}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      }, (res) => {
        res.resume();
        res.on('end', () => onAck(s, res.statusCode === 200));
      });
      req.on('error', () => onAck(s, false));
      req.end(body);
    };
  }

  const rows = [];
  let best = null;
  let missing = 0;
  let totFrames = 0, totBytes = 0, totDeliveries = 0;
  const rates = o.rates.split(',').map(Number);
  /* A rate that fails is tried once more (a neighbour on a shared VM can spoil one window);
   * the ladder stops after two failed rates in a row. */
  let failedInRow = 0;
  for (let ri = 0, attempt = 0; ri < rates.length; ) {
    const rate = rates[ri];
    if (seq + rate * (o.seconds + o.warmup + 1) >= CAP) break;
    /* Start from an empty pipeline: a backlog left by an overloaded rate would spoil the next. */
    for (const until = now() + 30000; inflight > 0 && now() < until; ) await sleep(20);
    if (inflight > 0) {
      console.error(`rate ${rate}: ${inflight} mutations still unanswered after 30 s; stopping`);
      break;
    }
    nlat = 0;
    nack = 0;
    let stalled = 0;
    /* Warm-up, then the measured window, paced every millisecond. */
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
          const el = Math.min(t - start, ms);
          const due = first + Math.floor((el * rate) / 1000);
          while (seq < due) {
            if (inflight >= o.maxInflight) {
              stalled++;
              break;
            }
            inflight++;
            send(seq++);
          }
          if (t - start >= ms) {
            clearInterval(timer);
            let visible = 0; // mutations of the window some watcher has already seen
            if (measure) {
              winHi = seq;
              for (let q = first; q < seq; q++) if (got[q]) visible++;
            }
            done({ sent: seq - first, acked: acked - ackedAtStart, visible, ms: t - start });
          }
        }, 1);
      });
    await run(o.warmup * 1000, false);
    const c0 = cpuMs(srv.pid), s0 = schedMs(srv.pid), g0 = process.cpuUsage(), w0 = now();
    const f0 = rxFrames, b0 = rxBytes, d0 = deliveries;
    const r = await run(o.seconds * 1000, true);
    const c1 = cpuMs(srv.pid), s1 = schedMs(srv.pid), g1 = process.cpuUsage(), w1 = now();
    const bw = rxBytes - b0; // bytes received during the window itself, for the rate
    /* Drain: every measured mutation acked and delivered, or 10 s. */
    const expected = (winHi - winLo) * fan;
    const deadline = now() + 10000;
    let delivered = 0;
    for (;;) {
      delivered = 0;
      for (let s = winLo; s < winHi; s++) delivered += got[s];
      if ((inflight === 0 && delivered >= expected) || now() > deadline) break;
      await sleep(20);
    }
    const drained = inflight === 0 && delivered >= expected;
    /* Frames of the window and its drain (the warm-up's stragglers included: a few at most). */
    const nf = rxFrames - f0, nb = rxBytes - b0, nd = deliveries - d0;
    totFrames += nf;
    totBytes += nb;
    totDeliveries += nd;
    const sorted = sortedCopy(lat, nlat);
    const acks = sortedCopy(ackLat, nack);
    const achieved = (r.visible * 1000) / r.ms; // committed and seen by the watchers within the window
    const ackRate = (r.acked * 1000) / r.ms;
    const p99 = percentile(sorted, 99);
    const ok = drained && achieved >= 0.95 * rate && ackRate >= 0.95 * rate && p99 < o.p99Limit && !stalled;
    const why = ok ? 'yes' : stalled ? 'no: writer at in-flight cap' : !drained ? 'no: not drained in 10 s'
      : p99 >= o.p99Limit ? 'no: p99' : achieved < 0.95 * rate ? 'no: commits behind' : 'no: acks behind';
    const wall = w1 - w0;
    rows.push([
      fmtInt(rate) + (attempt ? ' (again)' : ''), fmtInt(achieved), fmtMs(percentile(sorted, 50)), fmtMs(p99), fmtMs(percentile(sorted, 99.9)),
      fmtMs(sorted[sorted.length - 1]), fmtInt(ackRate), fmtMs(percentile(acks, 50)), fmtMs(percentile(acks, 99)),
      `${Math.round(((s1 - s0) / wall) * 100)}%`, `${Math.round(((g1.user + g1.system - g0.user - g0.system) / 1000 / wall) * 100)}%`,
      `${Math.round(rssBytes(srv.pid) / 1048576)}`, fmtInt(nb / nf), fmtInt(nb / nd), ((bw / 1048576) * 1000 / wall).toFixed(1), why,
    ]);
    process.stderr.write(`rate ${rate}: ${rows[rows.length - 1].join(' | ')} (stat cpu ${Math.round(c1 - c0)} ms)\n`);
    if (ok && (!best || rate > best.rate)) best = { rate, achieved, p99 };
    if (delivered < expected) console.error(`rate ${rate}: ${expected - delivered} deliveries missing after the drain`);
    missing += expected - delivered;
    winLo = winHi = -1;
    await sleep(500);
    if (!ok && attempt === 0 && !o.keepGoing) {
      attempt = 1;
      continue;
    }
    attempt = 0;
    ri++;
    failedInRow = ok ? 0 : failedInRow + 1;
    if (failedInRow >= 2 && !o.keepGoing) break;
  }

  const what = LIST ? `all subscribed to \`videos:list\` (the newest 200 videos), each mutation patching one of the ${o.jobs} videos in it`
    : `${o.perJob} per job, ${o.query === 'get' ? '\`get\` of one video each' : '\`videos:getJobById\` of one job each'}`;
  console.log(`Latency: ${nWatch.toLocaleString('en-US')} watcher connections speaking ` +
    `${o.protocol === 'sync' ? "Convex's sync protocol (whole values in Transitions)" : 'the native protocol (diffs in updates)'} (${what}), ` +
    `${o.jobs} jobs, writer: ${o.writer === 'ws' ? 'one WebSocket, pipelined mutates' : `HTTP keep-alive, ${o.httpConns} connections`} ` +
    `(at most ${o.maxInflight} in flight), ${o.seconds} s measured per rate after ${o.warmup} s warm-up. ` +
    `Setup (connect, auth, subscribe) took ${setupS.toFixed(1)} s. ` +
    `Latency: from sending a mutation to each of its watchers receiving the ${o.protocol === 'sync' ? 'Transition' : 'update'} that shows it. ` +
    `Bytes: frames the watchers received after their first result (payload plus WebSocket header), per frame and per update delivered to one watcher, during the window and its drain; MiB/s during the window. ` +
    `"commits/s seen by watchers": mutations sent in the window that a watcher had received by the window's end, per second; ` +
    `"acks/s": acknowledgements the writer received in the window. Sustained: p99 under ${o.p99Limit} ms and both rates within 5% of the target. ` +
    `A rate that fails is run once more ("again"); the ladder stops after two failed rates in a row.\n`);
  console.log(table(
    ['target/s', 'commits/s seen by watchers', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'acks/s', 'ack p50 ms', 'ack p99 ms', 'server CPU', 'generator CPU', 'server RSS MiB', 'bytes/frame', 'bytes/update', 'received MiB/s', `sustained (p99 < ${o.p99Limit} ms)`],
    rows,
  ));
  console.log(`\nHighest sustained rate: ${best ? `${fmtInt(best.rate)}/s target, ${fmtInt(best.achieved)} commits/s achieved, p99 ${fmtMs(best.p99)} ms` : 'none'}` +
    ` (${fmtInt((best ? best.achieved : 0) * fan)} pushes/s).`);
  console.log(`Bytes received over all rates (${o.protocol}): ${fmtInt(totFrames)} frames, ${fmtInt(totBytes / totFrames)} bytes per frame, ` +
    `${fmtInt(totBytes / totDeliveries)} bytes per update delivered to one watcher.`);
  const checks = `checks: ${versionErrors} ${o.protocol === 'sync' ? 'Transitions not starting where the last ended' : 'update frames whose version did not grow'} (per connection), ${seqErrors} out-of-order or repeated patches; ` +
    `${fmtInt(superseded)} deliveries superseded within a group (the watcher got a later state at once; counted as delivered then), ${merged} merged (whole-value) changes, ${otherChanges} other changes, ${errors} error messages, ${ackErrors} failed mutations, ${missing} deliveries missing`;
  console.log(checks + '.');
  if (versionErrors || seqErrors || errors || ackErrors || missing) console.log('**CHECK FAILED: see above**');
  await closeAll([...watchers, writer.ws]);
}
