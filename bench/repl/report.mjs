/*
 * Tables of bench/repl/run.sh's results: reads the RESULT line of every
 * run kept in DIR (lag_r1_2.txt: lag.mjs, 1 replica, repetition 2) and
 * prints markdown, each figure the median over the repetitions.
 *
 * node bench/repl/report.mjs DIR
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const runs = {}; // name without the repetition -> [result, ...]
const byRep = {}; // name -> repetition -> result
for (const f of readdirSync(dir).filter((f) => f.endsWith('.txt') && f !== 'commands.txt').sort()) {
  const line = readFileSync(join(dir, f), 'utf8').split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) continue;
  const key = f.replace(/_\d+\.txt$/, '');
  const r = JSON.parse(line.slice(7));
  (runs[key] ||= []).push(r);
  (byRep[key] ||= {})[f.match(/_(\d+)\.txt$/)[1]] = r;
}
/* The high ladder continues the lag ladder of the same repetition: one run of each. */
for (const key of Object.keys(byRep).filter((k) => k.startsWith('high_r'))) {
  const lagKey = key.replace(/^high/, 'lag');
  if (!byRep[lagKey]) continue;
  runs[lagKey] = Object.keys(byRep[lagKey]).map((i) => {
    const a = byRep[lagKey][i], b = byRep[key][i];
    if (!b) return a;
    const low = a.results.filter((r) => typeof r.target !== 'number' || !b.results.some((x) => x.target === r.target));
    return { ...a, results: [...low, ...b.results] };
  });
}

const med = (xs) => {
  const a = xs.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  return a.length ? a[Math.floor((a.length - 1) / 2)] : NaN; // the lower median of an even count
};
const ms = (x) => (!Number.isFinite(x) ? '-' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : Math.round(x).toLocaleString('en-US'));
const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
const pct = (x) => (Number.isFinite(x) ? `${Math.round(x)}%` : '-');
const table = (h, rows) => [`| ${h.join(' | ')} |`, `|${h.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const cfgName = (r) => (r < 0 ? 'single node, no --replicate' : `primary, ${r} replica${r === 1 ? '' : 's'}`);

/* The replicas' worst figure of a row (every replica must have it). */
const replicaWorst = (row, f) => {
  const reps = row.per.filter((p) => p.role === 'replica');
  return reps.length ? Math.max(...reps.map((p) => p[f])) : NaN;
};
const primaryOf = (row, f) => (row.per.find((p) => p.role === 'primary') || row.per.find((p) => p.node === 'single') || {})[f];
/* Followed: acknowledged at 95% of the target or more, and every watcher got every mutation.
 * Sustained: followed with the ack's p99 under 100 ms (bench/live's "sustained"). */
const followed = (row) => typeof row.target === 'number' && row.ackRate >= 0.95 * row.target && row.acked === row.sent &&
  row.per.every((p) => p.n === row.sent);
const sustained = (row) => followed(row) && row.ackP99 < 100;

function lagTables(prefix, title) {
  const cfgs = Object.keys(runs).filter((k) => k.startsWith(`${prefix}_r`)).map((k) => Number(k.slice(prefix.length + 2))).sort((a, b) => a - b);
  if (!cfgs.length) return;
  console.log(`### ${title}\n`);
  const base = runs[`${prefix}_r-1`];
  const at = (rs, target) => rs.map((x) => x.results.find((r) => r.target === target)).filter(Boolean);
  const best = (x, ok = sustained) => {
    let b = null;
    for (const r of x.results) if (ok(r) && (!b || r.target > b.target)) b = r;
    return b;
  };
  /* The cost of the append: the mutation's latency and throughput per configuration. */
  const rows = [];
  const satOf = (x) => x.results.filter((r) => typeof r.target === 'string').reduce((a, r) => (!a || r.ackRate > a.ackRate ? r : a), null) || {};
  const baseSat = base ? med(base.map((x) => satOf(x).ackRate)) : NaN;
  const baseP50 = base ? med(at(base, 1000).map((r) => r.ackP50)) : NaN;
  const baseP99 = base ? med(at(base, 1000).map((r) => r.ackP99)) : NaN;
  for (const c of cfgs) {
    const rs = runs[`${prefix}_r${c}`];
    const a1 = at(rs, 1000);
    const sats = rs.map((x) => x.results.filter((r) => typeof r.target === 'string'));
    const sat = sats.map((l) => l.reduce((a, r) => (!a || r.ackRate > a.ackRate ? r : a), null)).filter(Boolean);
    const hi = rs.map((x) => best(x));
    const fol = rs.map((x) => best(x, followed));
    const p50 = med(a1.map((r) => r.ackP50)), p99 = med(a1.map((r) => r.ackP99));
    rows.push([
      cfgName(c), `${rs.length}`, ms(p50), ms(p99), base && c >= 0 ? `${(p50 / baseP50).toFixed(2)}x / ${(p99 / baseP99).toFixed(2)}x` : '',
      int(med(fol.map((r) => (r ? r.target : NaN)))), int(med(hi.map((r) => (r ? r.target : NaN)))), `${int(med(sat.map((r) => r.ackRate)))} (${[...new Set(sat.map((r) => r.target.replace('sat ', '')))].join(', ')} in flight)`, ms(med(sat.map((r) => r.ackP50))), ms(med(sat.map((r) => r.ackP99))),
      base && c >= 0 ? `${(med(sat.map((r) => r.ackRate)) / baseSat).toFixed(2)}x` : '',
      pct(med(a1.map((r) => r.natsCpu))),
    ]);
  }
  console.log('The mutation\'s latency (the writer\'s send to its ack) at 1,000/s; the highest open-loop rate followed (acknowledged at 95% of the target or more, every subscriber getting every mutation) and sustained (followed, with the ack\'s p99 under 100 ms); the highest rate with 500 or 2,000 mutations kept in flight:\n');
  console.log(table(['configuration', 'runs', 'ack p50 ms at 1,000/s', 'ack p99 ms', '/ single (p50 / p99)', 'highest rate followed /s', 'highest sustained /s (ack p99 < 100 ms)', 'saturated acks/s', 'sat. ack p50 ms', 'sat. ack p99 ms', '/ single', 'NATS CPU at 1,000/s'], rows));
  console.log();
  /* Replication lag: the replicas' push against the primary's ack. */
  const lrows = [];
  for (const c of cfgs.filter((c) => c > 0)) {
    const rs = runs[`${prefix}_r${c}`];
    const show = (name, list) => {
      if (!list.length) return;
      lrows.push([
        cfgName(c), name, int(med(list.map((r) => r.ackRate))), ms(med(list.map((r) => replicaWorst(r, 'lagP50')))),
        ms(med(list.map((r) => replicaWorst(r, 'lagP99')))), ms(med(list.map((r) => replicaWorst(r, 'lagMax')))),
        ms(med(list.map((r) => replicaWorst(r, 'pushP50')))), ms(med(list.map((r) => replicaWorst(r, 'pushP99')))),
        ms(med(list.map((r) => primaryOf(r, 'pushP50')))), ms(med(list.map((r) => primaryOf(r, 'pushP99')))),
      ]);
    };
    show('1,000/s', at(rs, 1000));
    const hi = rs.map((x) => best(x)).filter(Boolean);
    show(`highest sustained (${hi.map((r) => int(r.target)).join(', ')}/s)`, hi);
    for (const w of ['sat 500', 'sat 2000']) show(`${w.slice(4)} in flight`, rs.map((x) => x.results.find((r) => r.target === w)).filter(Boolean));
  }
  if (lrows.length) {
    console.log('Replication lag (a replica\'s push minus the primary\'s ack of the same mutation; with 2 replicas the slower one):\n');
    console.log(table(['configuration', 'rate', 'acks/s', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'replica push p50 ms (from send)', 'replica push p99 ms', 'primary push p50 ms', 'primary push p99 ms'], lrows));
    console.log();
  }
  /* Every rate of the ladder, medians. */
  for (const c of cfgs) {
    const rs = runs[`${prefix}_r${c}`];
    /* The ladder's rates in order, then the saturated runs. */
    const targets = [...new Set(rs.flatMap((x) => x.results.map((r) => r.target)))]
      .sort((p, q) => (typeof p === 'number' ? p : 1e12 + parseInt(p.slice(4), 10)) - (typeof q === 'number' ? q : 1e12 + parseInt(q.slice(4), 10)));
    const trows = targets.map((t) => {
      const l = rs.map((x) => x.results.find((r) => r.target === t)).filter(Boolean);
      return [typeof t === 'number' ? int(t) : t, int(med(l.map((r) => r.ackRate))), ms(med(l.map((r) => r.ackP50))), ms(med(l.map((r) => r.ackP99))),
        ms(med(l.map((r) => replicaWorst(r, 'lagP50')))), ms(med(l.map((r) => replicaWorst(r, 'lagP99')))), ms(med(l.map((r) => replicaWorst(r, 'lagMax')))),
        ms(med(l.map((r) => primaryOf(r, 'pushP99')))),
        l.map((r) => r.cpu.map((x) => `${Math.round(x)}%`).join(' + ')).join(', '), l.map((r) => pct(r.natsCpu)).join(', '),
        `${l.filter(followed).length}/${l.length}`, `${l.filter(sustained).length}/${l.length}`];
    });
    console.log(`${cfgName(c)}, the ladder (medians of ${rs.length} runs; CPU of each Herald node, primary first, and of the three NATS servers together, per run, in % of one core):\n`);
    console.log(table(['target /s', 'acks/s', 'ack p50 ms', 'ack p99 ms', 'lag p50 ms', 'lag p99 ms', 'lag max ms', 'primary push p99 ms', 'Herald CPU', 'NATS CPU', 'followed', 'sustained'], trows));
    console.log();
  }
}

lagTables('lag', 'Lag and the append\'s cost, durable');
lagTables('nosync', 'The same with --no-sync on every node');

/* The floor under the append. */
if (runs.floor) {
  const f = runs.floor;
  console.log(`### The floor: a JetStream publish with ${f[0].copies} copies, acknowledged, one at a time (${f.length} runs of ${int(f[0].count)})\n`);
  console.log(table(['p50 ms', 'p99 ms', 'max ms', 'publishes/s', 'NATS CPU ms per publish (three servers)'],
    [[ms(med(f.map((r) => r.p50))), ms(med(f.map((r) => r.p99))), ms(med(f.map((r) => r.max))), int(med(f.map((r) => r.per_s))), med(f.map((r) => r.nats_cpu_ms_per_publish)).toFixed(3)]]));
  console.log();
}

/* Fan-out. */
const fr = runs['fanout_r1'], fs = runs['fanout_r-1'];
if (fr || fs) {
  console.log('### Fan-out per replica\n');
  const ns = [...new Set([...(fr || []), ...(fs || [])].flatMap((x) => x.results.map((r) => r.n)))].sort((a, b) => a - b);
  const pick = (rs, n) => (rs || []).map((x) => x.results.find((r) => r.n === n)).filter(Boolean);
  const rows = [];
  for (const n of ns) {
    const a = pick(fr, n), b = pick(fs, n);
    const ra = med(a.map((r) => r.last)), rb = med(b.map((r) => r.last));
    rows.push([int(n), ms(med(b.map((r) => r.first))), ms(rb), ms(med(a.map((r) => r.first))), ms(ra), Number.isFinite(ra / rb) ? `${(ra / rb).toFixed(2)}x` : '-',
      ms(med(a.map((r) => r.lagLast))), int(med(b.map((r) => r.pushesPerS))), int(med(a.map((r) => r.pushesPerS))), ms(med(b.map((r) => r.cpuPerWrite))), ms(med(a.map((r) => r.cpuPerWrite))),
      `${a.length} / ${b.length}`]);
  }
  console.log('One write at a time (20 writes a run), from the send on the primary (single: the one node):\n');
  console.log(table(['subscribers', 'single: first ms', 'single: last ms', 'replica: first ms', 'replica: last ms', 'replica / single (last)', 'replica: primary ack → last ms', 'single pushes/s', 'replica pushes/s', 'single CPU ms/write', 'replica CPU ms/write', 'runs (replica / single)'], rows));
  console.log();
  const srows = [];
  for (const n of ns) {
    const rates = [...new Set([...pick(fr, n), ...pick(fs, n)].flatMap((r) => r.rates.map((x) => x.rate)))].sort((a, b) => a - b);
    for (const rate of rates) {
      const a = pick(fr, n).map((r) => r.rates.find((x) => x.rate === rate)).filter(Boolean);
      const b = pick(fs, n).map((r) => r.rates.find((x) => x.rate === rate)).filter(Boolean);
      const pa = med(a.map((r) => r.pushesPerS)), pb = med(b.map((r) => r.pushesPerS));
      srows.push([int(n), int(rate), int(n * rate), int(pb), ms(med(b.map((r) => r.lagSendP50))), ms(med(b.map((r) => r.lagSendP99))), pct(med(b.map((r) => r.serverCpu))),
        int(pa), ms(med(a.map((r) => r.lagAckP50))), ms(med(a.map((r) => r.lagAckP99))), ms(med(a.map((r) => r.lagSendP50))), ms(med(a.map((r) => r.lagSendP99))), pct(med(a.map((r) => r.serverCpu))),
        Number.isFinite(pa / pb) ? `${(pa / pb).toFixed(2)}x` : '-', pct(med([...a, ...b].map((r) => r.genCpu)))]);
    }
  }
  if (srows.length) {
    console.log('Writes at fixed rates (5 s each; pushes/s delivered counted until the last subscriber has the last write):\n');
    console.log(table(['subscribers', 'writes/s', 'pushes/s asked', 'single: pushes/s', 'single: send → push p50 ms', 'p99 ms', 'single CPU', 'replica: pushes/s', 'replica: primary ack → push p50 ms', 'p99 ms', 'replica: send → push p50 ms', 'p99 ms', 'replica CPU', 'replica / single (pushes/s)', 'generator CPU'], srows));
    console.log();
  }
}
