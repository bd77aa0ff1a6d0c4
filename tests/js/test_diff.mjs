/*
 * The browser client's diff application (web-demo/herald-diff.js) against
 * the server's: for every (old, diff, new) triple that the C test
 * generates from random results, applyDiff(old, diff) must deep-equal new,
 * without modifying old or diff, and must keep the documents a list diff
 * does not touch as the very same objects.
 *
 *   node tests/js/test_diff.mjs path/to/test_diff [N]   runs test_diff --emit
 *   node tests/js/test_diff.mjs --file triples.jsonl     reads a saved file
 *
 * HERALD_DIFF_SEED (passed on to test_diff) replays a run; the seed is
 * printed by test_diff --emit.
 *
 * Plain node (v20), no packages. It must never pass a triple it did not
 * check: a file with fewer lines than asked for fails.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { applyDiff } from '../../web-demo/herald-diff.js';

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);

/* JSON equality: arrays in order, objects whatever their key order. */
function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  const ka = Object.keys(a), kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => hasOwn(b, k) && deepEqual(a[k], b[k]));
}

function deepFreeze(v) {
  if (v !== null && typeof v === 'object') {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze(v[k]);
  }
  return v;
}

let failures = 0;
function fail(message) {
  failures++;
  console.error(message);
  if (failures > 20) process.exit(1);
}

/* Documents of `old` that the list diff neither changes nor replaces stay the same objects. */
function checkSharing(old, diff, result, line) {
  if (!diff || !hasOwn(diff, 'a') || !Array.isArray(old)) return;
  const changed = new Set((diff.a.c || []).map((c) => c[0]));
  const byId = new Map(old.map((d) => [d._id, d]));
  for (const doc of result) {
    const before = byId.get(doc._id);
    if (before !== undefined && !changed.has(doc._id) && before !== doc)
      fail(`line ${line}: unchanged document ${JSON.stringify(doc._id)} was copied`);
  }
}

function checkTriples(text, expected) {
  const lines = text.split('\n').filter((l) => l.length);
  if (expected !== undefined && lines.length !== expected)
    fail(`expected ${expected} triples, got ${lines.length}`);
  const forms = { none: 0, v: 0, a: 0, o: 0 };
  let diffBytes = 0, resultBytes = 0;
  lines.forEach((l, n) => {
    const t = JSON.parse(l);
    const diff = hasOwn(t, 'diff') ? t.diff : undefined;
    forms[diff ? Object.keys(diff)[0] : 'none']++;
    if (diff) {
      diffBytes += JSON.stringify(diff).length;
      resultBytes += JSON.stringify(t.new).length;
    }
    const old = deepFreeze(t.old);
    deepFreeze(diff);
    let result;
    try {
      result = applyDiff(old, diff);
    } catch (e) {
      fail(`line ${n + 1}: applyDiff threw ${e.message}\n  ${l.slice(0, 500)}`);
      return;
    }
    if (!deepEqual(result, t.new)) {
      const got = JSON.stringify(result).slice(0, 500);
      fail(`line ${n + 1}: applyDiff(old, diff) differs from new\n  ${l.slice(0, 500)}\n  got ${got}`);
      return;
    }
    checkSharing(old, diff, result, n + 1);
  });
  console.log(`test_diff.mjs: ${lines.length} triples (${forms.none} equal, ${forms.v} replaced, ` +
    `${forms.a} list patches, ${forms.o} object patches); diffs are ` +
    `${(100 * diffBytes / Math.max(resultBytes, 1)).toFixed(1)}% of the bytes of the results they replace`);
}

/* Broken diffs throw, and never touch what they were given. */
function checkRefusals() {
  const list = deepFreeze([{ _id: 'a', x: 0 }, { _id: 'b' }, { _id: 'c' }]);
  const bad = [
    {}, [], 5, { x: 1 }, { v: 1, a: {} }, { a: 5 }, { a: { q: [] } }, { a: { r: 'a' } },
    { a: { r: ['zz'] } }, { a: { r: ['a', 'a'] } }, { a: { m: [['a', 5]] } }, { a: { m: [['a', 0.5]] } },
    { a: { m: [['a', 1], ['b', 0]] } }, { a: { r: ['a'], m: [['a', 1]] } }, { a: { i: [[4, {}]] } },
    { a: { i: [[1, {}]], m: [['a', 1]] } }, { a: { c: [['a', { u: ['nope'] }]] } },
    { a: { r: ['c'], c: [['c', { s: { x: 1 } }]] } }, { o: {} },
  ];
  for (const d of bad) {
    let threw = false;
    try {
      applyDiff(list, deepFreeze(d));
    } catch (e) {
      threw = e instanceof Error && e.message.startsWith('herald diff:');
    }
    if (!threw) fail(`diff ${JSON.stringify(d)} was not refused`);
  }
  if (applyDiff(list, undefined) !== list || applyDiff(list, null) !== list)
    fail('an empty diff changed the result');
  /* A field named __proto__ is a field, not the prototype. */
  const doc = applyDiff({ _id: 'a' }, JSON.parse('{"o":{"s":{"__proto__":{"polluted":1}}}}'));
  if (!hasOwn(doc, '__proto__') || Object.getPrototypeOf(doc) !== Object.prototype || {}.polluted)
    fail('__proto__ field handled as a prototype');
}

const args = process.argv.slice(2);
checkRefusals();
if (args[0] === '--file' && args[1]) {
  checkTriples(readFileSync(args[1], 'utf8'));
} else if (args[0]) {
  const n = Number(args[1] || 5000);
  const dir = mkdtempSync(join(tmpdir(), 'herald-diff-'));
  try {
    const file = join(dir, 'triples.jsonl');
    execFileSync(args[0], ['--emit', file, String(n)], { stdio: ['ignore', 'inherit', 'inherit'] });
    checkTriples(readFileSync(file, 'utf8'), n);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  console.error('usage: node test_diff.mjs path/to/test_diff [N] | --file triples.jsonl');
  process.exit(2);
}
if (failures) {
  console.error(`test_diff.mjs: ${failures} failures`);
  process.exit(1);
}
