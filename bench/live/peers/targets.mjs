/*
 * The two servers of the peer benchmarks behind one interface, so that
 * every workload script drives Herald and Triplit with the same code:
 * start the server pinned to core 0, open watcher connections, subscribe
 * each to one job, insert jobs and send progress patches from one writer
 * connection (pipelined), and read the patch numbers back from what the
 * watchers receive.
 *
 *   Herald   `herald serve` with examples/twitch-jobs (../lib.mjs starts it);
 *            watchers call the query function `videos:getJobById` with the
 *            job's `jobId`; the writer sends raw `mutate` patches, as
 *            ../latency.mjs does.
 *   Triplit  @triplit/server (./triplit-server.mjs, packages from the
 *            scratch folder run.sh installs); watchers send Triplit's sync
 *            protocol's CONNECT_QUERY for `videos` where id = the job's
 *            document; the writer sends CHANGES messages setting the same
 *            two fields. Connections carry a service ("secret") token, as
 *            Herald's carry the admin key.
 *
 * Every patch writes its sequence number into `updatedAt`; both servers
 * send it back in what the watchers receive (Herald a diff, Triplit the
 * whole entity), so one pattern finds it in either.
 */
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  insertVideos, now, openMany, openWriter, sleep, startServer, stopProcess, WebSocket,
} from '../lib.mjs';

export const here = dirname(fileURLToPath(import.meta.url));

/* Every "updatedAt":N of a frame, in order. */
const SEQ = /"updatedAt":(\d+)/g;
export function seqsOf(text) {
  const out = [];
  for (const m of text.matchAll(SEQ)) out.push(Number(m[1]));
  return out;
}

/* Opens `n` connections `wave` at a time with `open(i)`, which resolves with a ready socket. */
async function openWaves(n, open, wave) {
  const out = new Array(n);
  for (let i = 0; i < n; i += wave) {
    const batch = [];
    for (let j = i; j < Math.min(n, i + wave); j++) batch.push(open(j).then((ws) => (out[j] = ws)));
    await Promise.all(batch);
  }
  return out;
}

/* ---- Herald ---- */

async function heraldTarget(o) {
  const srv = await startServer({ herald: o.herald, dataDir: o.data + '-herald', port: o.port, extra: o.serverArgs ? o.serverArgs.split(' ') : [] });
  const url = srv.url, key = srv.key;
  return {
    name: 'Herald',
    storage: 'LMDB, fsync before the ack and before any update leaves',
    pid: srv.pid,
    exited: srv.exited,
    stderr: srv.stderr,
    stop: () => srv.stop(),
    /*
     * `n` watchers; onFrame(i, t, kind, text) with kind 'result' (the first answer to
     * its subscription), 'update' or 'other'.
     */
    async openWatchers(n, onFrame, wave = 200) {
      return openMany(url, key, n, (i) => (data) => {
        const t = now();
        const s = data.toString();
        onFrame(i, t, s.startsWith('{"type":"update"') ? 'update' : s.startsWith('{"type":"result"') ? 'result' : 'other', s);
      }, wave);
    },
    subscribe(ws, job, sid = 's1') {
      ws.send(`{"type":"sub","id":"${sid}","path":"videos:getJobById","args":{"jobId":"${job.jobId}"}}`);
    },
    /* The writer: insertJobs(n) then send(seq, job); onAck(seq, ok) for each answer. */
    async openWriter(onAck) {
      const w = await openWriter(url, key);
      return {
        ws: w.ws,
        async insertJobs(n, tag) {
          const ids = await insertVideos(w, n, tag);
          const jobs = ids.map((id, j) => ({ id, jobId: `job-${j}` }));
          w.ws.removeAllListeners('message');
          w.ws.on('message', (data) => {
            const m = JSON.parse(data);
            onAck(Number(m.id), m.type === 'ack', data.toString());
          });
          return jobs;
        },
        send(seq, job) {
          w.ws.send(`{"type":"mutate","id":"${seq}","ops":[{"op":"patch","id":"${job.id}","value":{"progressPercentage":${seq % 101},"updatedAt":${seq}}}]}`);
        },
      };
    },
  };
}

/* ---- Triplit ---- */

function hs256(payload, secret) {
  const b64 = (x) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(payload)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/* SuperJSON's encoding of Triplit's DBChanges ({collection: {sets: Map, deletes: Set}}). */
const CHANGES_META = '{"values":{"videos.sets":["map"],"videos.deletes":["set"]}}';
const changesMsg = (setsJson) => `{"type":"CHANGES","payload":{"changes":{"json":{"videos":{"sets":${setsJson},"deletes":[]}},"meta":${CHANGES_META}}}}`;

async function triplitTarget(o) {
  const secret = 'herald-peer-bench-' + process.pid;
  const project = 'herald-bench';
  const args = ['-c', '0', process.execPath, join(here, 'triplit-server.mjs'), '--npm', o.triplitNpm, '--data', o.data + '-triplit',
    '--port', String(o.port), '--secret', secret, '--project', project, '--storage', o.triplitStorage];
  const proc = spawn('taskset', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  proc.stderr.on('data', (d) => {
    err += d;
    if (err.length > 100000) err = err.slice(-50000);
  });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`triplit did not start: ${out} ${err}`)), 60000);
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    proc.on('exit', (code) => reject(new Error(`triplit exited ${code}: ${out} ${err}`)));
  });
  proc.removeAllListeners('exit');
  let exited = null;
  proc.on('exit', (code, sig) => (exited = { code, sig }));
  const token = hs256({ 'x-triplit-token-type': 'secret', 'x-triplit-project-id': project }, secret);
  const url = `ws://127.0.0.1:${o.port}/?token=${token}`;

  /* One connection, resolved once the server said READY; onMessage(text) gets the rest. */
  const openClient = (onMessage) =>
    new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true });
      let ready = false;
      ws.on('error', (e) => {
        if (!ready) reject(e);
      });
      ws.on('close', (code, reason) => {
        if (!ready) reject(new Error(`closed before READY: ${code} ${reason}`));
      });
      ws.on('message', (data) => {
        if (!ready) {
          const s = data.toString();
          if (!s.startsWith('{"type":"READY"')) return reject(new Error(`no READY: ${s.slice(0, 300)}`));
          ready = true;
          return resolve(ws);
        }
        onMessage(data);
      });
    });

  return {
    name: 'Triplit',
    storage: {
      lmdb: "LMDB through Triplit's `createTriplitStorageProvider('lmdb')` (lmdb-js defaults: overlappingSync, so a commit is acknowledged and pushed before its fsync ends)",
      'lmdb-sync': 'LMDB (lmdb-js, overlappingSync off: each commit fsynced before it returns)',
      memory: 'memory (not durable)',
    }[o.triplitStorage],
    pid: proc.pid, // taskset execs node: same pid
    exited: () => exited,
    stderr: () => err,
    stop: () => stopProcess(proc, exited),
    async openWatchers(n, onFrame, wave = 200) {
      return openWaves(n, (i) => {
        let answered = false;
        return openClient((data) => {
          const t = now();
          const s = data.toString();
          if (!s.startsWith('{"type":"ENTITY_DATA"')) return onFrame(i, t, 'other', s);
          /* The first ENTITY_DATA answers the subscription; later ones are updates. */
          const kind = answered ? 'update' : 'result';
          answered = true;
          onFrame(i, t, kind, s);
        });
      }, wave);
    },
    subscribe(ws, job, sid = 'q1') {
      ws.send(`{"type":"CONNECT_QUERY","payload":{"id":"${sid}","params":{"collectionName":"videos","where":[["id","=","${job.id}"]]}}}`);
    },
    /*
     * CHANGES_ACK carries no id: answers come in the order of the messages (each
     * takes the server's next clock timestamp on arrival), so they are matched in order.
     */
    async openWriter(onAck) {
      const sent = [];
      let head = 0;
      let waiter = null;
      const ws = await openClient((data) => {
        const s = data.toString();
        const ok = s.startsWith('{"type":"CHANGES_ACK"');
        if (!ok && !(s.startsWith('{"type":"ERROR"') && s.includes('"messageType":"CHANGES"'))) return;
        const seq = sent[head++];
        if (waiter) {
          const w = waiter;
          waiter = null;
          w(ok, s);
        } else onAck(seq, ok, s);
      });
      return {
        ws,
        async insertJobs(n, tag) {
          const jobs = [];
          for (let i = 0; i < n; i += 1000) {
            const sets = [];
            for (let j = i; j < Math.min(n, i + 1000); j++) {
              const id = `${tag}-${j}`;
              jobs.push({ id, jobId: `job-${j}` });
              sets.push([id, { id, twitchId: String(1900000000 + j), title: `${tag} video ${j}`, status: 'Queued', jobId: `job-${j}`, progressPercentage: 0 }]);
            }
            const answer = new Promise((r) => (waiter = (ok, s) => r({ ok, s })));
            sent.push(-1);
            ws.send(changesMsg(JSON.stringify(sets)));
            const a = await answer;
            if (!a.ok) throw new Error(`insert failed: ${a.s.slice(0, 500)}`);
          }
          return jobs;
        },
        send(seq, job) {
          sent.push(seq);
          ws.send(changesMsg(`[["${job.id}",{"progressPercentage":${seq % 101},"updatedAt":${seq}}]]`));
        },
      };
    },
  };
}

/* Options every workload script takes, besides its own. */
export const targetDefaults = {
  server: 'herald', // or triplit
  herald: 'build-release/herald',
  data: 'build-release/peers-data',
  serverArgs: '',
  triplitNpm: 'build-release/peers-npm',
  triplitStorage: 'lmdb', // lmdb-sync, memory
  port: 3391,
  out: '', // append the figures to this file, one JSON line
  variant: '', // a name for this run's setup in that line (e.g. another storage)
};

export async function startTarget(o) {
  if (o.server === 'herald') return heraldTarget(o);
  if (o.server === 'triplit') return triplitTarget(o);
  throw new Error(`unknown server ${o.server}`);
}

/*
 * Runs main(target) on a fresh server, then stops it. Exits 1 if main threw or
 * the server died during the run; the figures main returned go to --out with
 * the workload's name, the server's and its storage.
 */
export async function runTarget(o, workload, main) {
  const record = async (line) => {
    if (!o.out) return;
    const { appendFileSync } = await import('node:fs');
    appendFileSync(o.out, JSON.stringify({ workload, variant: o.variant || undefined, conns: o.conns, ...line }) + '\n');
  };
  let target;
  try {
    target = await startTarget(o);
  } catch (e) {
    console.error(e);
    await record({ server: o.server === 'herald' ? 'Herald' : 'Triplit', error: `did not start: ${String(e.message || e).slice(0, 300)}` });
    process.exit(1);
  }
  let failed = false, figures = null, error = null;
  try {
    figures = await main(target);
  } catch (e) {
    console.error(e);
    error = String(e && e.message ? e.message : e).slice(0, 300);
    failed = true;
  } finally {
    const ex = target.exited();
    if (ex) {
      error = (error ? error + '; ' : '') + `server exited during the run: ${JSON.stringify(ex)}`;
      console.error(`${target.name} exited during the run: ${JSON.stringify(ex)}; stderr tail:\n${target.stderr().slice(-1500)}`);
      failed = true;
    }
    await target.stop();
  }
  await record({ server: target.name, storage: target.storage, error, ...figures });
  process.exit(failed ? 1 : 0);
}

export { sleep };
