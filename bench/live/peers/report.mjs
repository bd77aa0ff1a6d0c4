/*
 * Prints the peer benchmarks' figures (the JSON lines that latency.mjs,
 * fanout.mjs and memory.mjs append to one file with --out) as markdown:
 * one table per workload, a Herald column, a Triplit column and "Herald
 * ahead by": Triplit's figure over Herald's where less is better (latency,
 * CPU, memory), Herald's over Triplit's where more is better (delivered).
 * Below 1x, Triplit is ahead.
 *
 * node peers/report.mjs RESULTS.jsonl
 */
import { readFileSync } from 'node:fs';
import { fmtInt, fmtMs, table } from '../lib.mjs';

const lines = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const find = (workload, server, pred = () => true) => lines.find((l) => l.workload === workload && l.server === server && pred(l));

const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(x < 0.995 ? 1 : 0)}%` : '-');
const mib = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} MiB` : '-');
const bytes = (x) => (Number.isFinite(x) ? `${fmtInt(x)} B` : '-');
const sec = (x) => (Number.isFinite(x) ? `${x.toFixed(1)} s` : '-');
const ms = (x) => (Number.isFinite(x) ? `${fmtMs(x)} ms` : '-');
function ahead(h, t, lessIsBetter = true) {
  if (!Number.isFinite(h) || !Number.isFinite(t) || h <= 0 || t <= 0) return '-';
  const r = lessIsBetter ? t / h : h / t;
  return `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}x`;
}
/* A row: name, the two figures, their format, and which way is better. */
const row = (name, h, t, fmt, lessIsBetter = true) => [name, fmt(h), fmt(t), ahead(h, t, lessIsBetter)];
const failed = (r) => (!r ? 'not run' : r.error ? `failed: ${r.error}` : null);
const note = (h, t) => [failed(h) && `Herald: ${failed(h)}.`, failed(t) && `Triplit: ${failed(t)}.`].filter(Boolean).join(' ');

const ran = (workload) => lines.some((l) => l.workload === workload);

function latencyTable(workload, title, extra = []) {
  if (!ran(workload)) return;
  const h = find(workload, 'Herald'), t = find(workload, 'Triplit', (l) => !l.variant);
  console.log(`### ${title}\n`);
  const any = h && !h.error ? h : t;
  if (any && !any.error)
    console.log(`${fmtInt(any.watchers)} watcher connections (${any.watchers / any.jobs} per job), ${any.jobs} jobs, ` +
      `${any.seconds} s measured per rate after 1 s of warm-up.\n`);
  const rows = [];
  if (h || t) rows.push(row('setup: connect and subscribe all watchers', h?.setupS, t?.setupS, sec));
  const rates = [...new Set([...(h?.rows || []), ...(t?.rows || [])].map((r) => r.rate))];
  for (const rate of rates) {
    const a = h?.rows?.find((r) => r.rate === rate), b = t?.rows?.find((r) => r.rate === rate);
    const at = `${fmtInt(rate)}/s`;
    rows.push(row(`${at}: p50 latency`, a?.p50, b?.p50, ms));
    rows.push(row(`${at}: p99 latency`, a?.p99, b?.p99, ms));
    rows.push(row(`${at}: updates delivered`, a?.delivered, b?.delivered, pct, false));
    rows.push(row(`${at}: server CPU`, a?.serverCpu, b?.serverCpu, pct));
    if (rates.length === 1) {
      rows.push(row(`${at}: max latency`, a?.max, b?.max, ms));
      rows.push(row(`${at}: server RSS`, a?.rssMiB, b?.rssMiB, mib));
    }
  }
  console.log(table(['', 'Herald', 'Triplit', 'Herald ahead by'], rows));
  for (const v of extra) {
    const r = find(workload, 'Triplit', (l) => l.variant === v.variant);
    if (!r) continue;
    if (r.error) {
      console.log(`\n${v.label}: failed: ${r.error}`);
      continue;
    }
    console.log(`\n${v.label}: ` + r.rows.map((x) => `${fmtInt(x.rate)}/s p50 ${ms(x.p50)}, p99 ${ms(x.p99)}, delivered ${pct(x.delivered)}, ` +
      `server CPU ${pct(x.serverCpu)} (Herald ahead by ${ahead(h?.rows?.find((y) => y.rate === x.rate)?.p99, x.p99)} at p99)`).join('; ') + '.');
  }
  const n = note(h, t);
  if (n) console.log(`\n${n}`);
  for (const r of [h, t].filter((r) => r && !r.error)) {
    const late = r.rows.filter((x) => x.backlog).map((x) => `${fmtInt(x.rate)}/s (${fmtInt(x.backlog)} writes still unanswered when it began)`);
    const capped = r.rows.filter((x) => x.stalled).map((x) => `${fmtInt(x.rate)}/s (${fmtInt(x.stalled)} writes not sent: 5,000 unanswered)`);
    if (late.length || capped.length) console.log(`\n${r.server}: ${[...late, ...capped].join('; ')}.`);
  }
  console.log();
}

console.log(`"Herald ahead by": Triplit's figure / Herald's (for delivered updates, Herald's / Triplit's); below 1x Triplit is ahead.\n`);

latencyTable('latency-point', '(a) 1,000 subscriptions, 100 jobs, 100 updates/s', [
  { variant: 'lmdb-sync', label: 'Triplit with its LMDB store opened with overlappingSync off (each commit fsynced before it is acknowledged and pushed, as Herald does)' },
]);
latencyTable('latency-ramp', '(b) Ramp: 5,000 subscriptions, 500 jobs');

if (ran('fanout')) {
  console.log('### (c) Fan-out: one write, N watchers of the same row\n');
  const fans = lines.filter((l) => l.workload === 'fanout');
  const sizes = [...new Set(fans.filter((l) => !l.error).map((l) => l.conns))].sort((a, b) => b - a);
  const rows = [];
  for (const n of sizes) {
    const h = find('fanout', 'Herald', (l) => l.conns === n && !l.error), t = find('fanout', 'Triplit', (l) => l.conns === n && !l.error);
    const at = `${fmtInt(n)} watchers`;
    rows.push(row(`${at}: setup (connect, subscribe)`, h?.setupS, t?.setupS, sec));
    rows.push(row(`${at}: first watcher has it (p50)`, h?.firstP50, t?.firstP50, ms));
    rows.push(row(`${at}: half have it (p50)`, h?.medianP50, t?.medianP50, ms));
    rows.push(row(`${at}: **last watcher has it (p50)**`, h?.lastP50, t?.lastP50, ms));
    rows.push(row(`${at}: last watcher has it (max)`, h?.lastMax, t?.lastMax, ms));
    rows.push(row(`${at}: writer's ack (p50)`, h?.ackP50, t?.ackP50, ms));
    rows.push(row(`${at}: server CPU per write (p50)`, h?.cpuP50, t?.cpuP50, ms));
    rows.push(row(`${at}: server RSS`, h?.rssMiB, t?.rssMiB, mib));
  }
  console.log(table(['', 'Herald', 'Triplit', 'Herald ahead by'], rows));
  const tries = fans.filter((l) => l.error).map((l) => `${l.server} with ${fmtInt(l.conns)} watchers failed: ${l.error}`);
  const best = (s) => Math.max(0, ...fans.filter((l) => l.server === s && !l.error).map((l) => l.conns));
  console.log(`\nLargest fan-out measured: Herald ${fmtInt(best('Herald'))} watchers, Triplit ${fmtInt(best('Triplit'))}` +
    `${tries.length ? `; ${tries.join('; ')}` : ''}. Writes: ${fans.find((l) => !l.error)?.repeat ?? '-'} per size, one at a time.\n`);
}

if (ran('memory')) {
  const h = find('memory', 'Herald'), t = find('memory', 'Triplit');
  const n = (h && !h.error ? h : t)?.conns;
  console.log(`### (d) Memory: ${n ? fmtInt(n) : ''} idle connections\n`);
  const rows = [
    row('server RSS: writer and one watcher', h?.baseMiB, t?.baseMiB, mib),
    row(`server RSS with ${n ? fmtInt(n) : 'N'} idle connections`, h?.idleMiB, t?.idleMiB, mib),
    row('... each subscribed to one job', h?.subbedMiB, t?.subbedMiB, mib),
    row('per idle connection', h?.perIdle, t?.perIdle, bytes),
    row('per subscription', h?.perSubscription, t?.perSubscription, bytes),
    row('**per idle subscribed connection**', h?.perSubscribed, t?.perSubscribed, bytes),
  ];
  console.log(table(['', 'Herald', 'Triplit', 'Herald ahead by'], rows));
  const x = note(h, t);
  if (x) console.log(`\n${x}`);
  console.log();
}
