/*
 * Live pages through the native protocol and web-demo/herald.js: a feed
 * paginated three posts a page, newest first. A new post grows page 1
 * (its end stays where its first run fixed it), and the client keeps each
 * page's journal: after a server restart it re-subscribes with it, so
 * page 1 keeps its end and every post stays in exactly one page.
 *
 * Run as: node test_pages.mjs <herald> <source root>
 * Needs the `ws` package (npm ci in tests/js); exits 77 (skipped) without it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checker, freePort, importOrSkip, startHerald, stopProcess } from './lib.mjs';

const [{ WebSocket }] = await importOrSkip(['ws']);
const [herald, root] = process.argv.slice(2);
const { connect } = await import(join(root, 'web-demo', 'herald.js'));
const { check, failures } = checker();

const schema = { tables: { posts: { document: { type: 'object', fields: { n: { type: 'number' } } } } } };
const postsLua = `
return {
  list = herald.query{
    args = {paginationOpts = v.paginationOpts()},
    handler = function(ctx, a) return ctx.db:query('posts'):order('desc'):paginate(a.paginationOpts) end},
  add = herald.mutation{args = {n = v.number()}, handler = function(ctx, a) return ctx.db:insert('posts', a) end},
}
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!cond() && Date.now() < deadline) await sleep(20);
  check(cond(), what);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'herald-pages-'));
  const app = join(dir, 'app');
  mkdirSync(join(app, 'functions'), { recursive: true });
  writeFileSync(join(app, 'schema.json'), JSON.stringify(schema));
  writeFileSync(join(app, 'functions', 'posts.lua'), postsLua);
  const data = join(dir, 'data');
  const port = await freePort();
  const start = () => startHerald(herald, ['--data', data, '--app', app, 'serve', '--port', String(port)]);
  let { proc, key } = await start();
  const db = connect(`ws://127.0.0.1:${port}/ws`, { token: key, WebSocket });
  for (let n = 1; n <= 7; n++) await db.mutation('posts:add', { n });

  /* Three pages, each subscribed with the previous page's continueCursor, as usePaginatedQuery does. */
  const pages = [];
  const numbers = (i) => (pages[i].value ? pages[i].value.page.map((d) => d.n).join(',') : null);
  for (let i = 0; i < 3; i++) {
    const cursor = i ? pages[i - 1].value.continueCursor : null;
    const page = { value: null };
    pages.push(page);
    db.subscribe('posts:list', { paginationOpts: { numItems: 3, cursor, id: 1 } }, (value) => { page.value = value; },
      (e) => check(false, `page ${i}: ${e.code} ${e.message}`));
    await until(`page ${i} arrives`, () => page.value !== null);
  }
  check(numbers(0) === '7,6,5' && numbers(1) === '4,3,2' && numbers(2) === '1', `first pages: ${[0, 1, 2].map(numbers)}`);
  check(pages[2].value.isDone === true && pages[1].value.isDone === false, 'only the last page is done');
  const journals = [...db.subs.values()].map((s) => s.journal);
  check(journals.every((j) => typeof j === 'string' && j.length > 0), `every page kept its journal: ${JSON.stringify(journals)}`);
  check(journals[0] === pages[0].value.continueCursor, 'the journal is the page\'s end');

  /* A raw query's page (the admin key's) keeps its end the same way. */
  let raw = null;
  db.subscribe({ table: 'posts', order: 'desc', paginate: { numItems: 3, cursor: null } }, (value) => { raw = value; },
    (e) => check(false, `raw page: ${e.code} ${e.message}`));
  await until('the raw page arrives', () => raw !== null);
  const rawNumbers = () => raw.page.map((d) => d.n).join(',');
  check(rawNumbers() === '7,6,5', `raw page: ${rawNumbers()}`);

  await db.mutation('posts:add', { n: 8 });
  check(numbers(0) === '8,7,6,5' && numbers(1) === '4,3,2', `a new post grows page 1: ${[0, 1, 2].map(numbers)}`);
  await until(`a new post grows the raw page too: ${rawNumbers()}`, () => rawNumbers() === '8,7,6,5');

  /* Restart: the client re-subscribes with the journals; page 1 keeps post 5. */
  check((await stopProcess(proc)) === 0, 'server stops cleanly');
  ({ proc } = await start());
  const deadline = Date.now() + 20000;
  let back = false;
  while (!back && Date.now() < deadline) {
    try {
      await db.mutation('posts:add', { n: 9 });
      back = true;
    } catch {
      await sleep(200);
    }
  }
  check(back, 'the client reconnected after the restart');
  await until('page 1 after the restart', () => numbers(0) === '9,8,7,6,5');
  check(numbers(1) === '4,3,2' && numbers(2) === '1', `pages after the restart: ${[0, 1, 2].map(numbers)}`);
  const all = [0, 1, 2].flatMap((i) => pages[i].value.page.map((d) => d.n)).sort((a, b) => a - b);
  check(all.join(',') === '1,2,3,4,5,6,7,8,9', `every post in exactly one page: ${all}`);

  db.close();
  await stopProcess(proc);
  rmSync(dir, { recursive: true, force: true });
  console.log(failures.length ? `js pages: ${failures.length} failures` : 'js pages: all passed');
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.log('FAIL:', e);
  process.exit(1);
});
