/*
 * `herald codegen` (docs/codegen.md): the types it writes make a Convex
 * frontend's calls type-check with TypeScript from npm, and only the right
 * calls.
 *
 * For examples/twitch-jobs, examples/social (seed 004) and
 * tests/fixtures/codegen (every validator kind, v.paginationOpts(), internal
 * functions, `returns`, a module in a folder), it writes convex/_generated into a temporary project whose
 * node_modules is tests/js/node_modules, then runs `tsc --noEmit` over:
 *   - components and scripts that call the functions correctly
 *     (useQuery, useMutation, usePaginatedQuery, ConvexHttpClient, Doc, Id):
 *     tsc must pass;
 *   - one file per mistake (a function that does not exist, a wrong argument
 *     type, a missing argument, a query passed to useMutation, an internal
 *     function through `api`, a value outside a literal union, an int64
 *     result read as a number): tsc must fail with the expected diagnostic.
 * It also checks that the generated api.js names functions as Herald does
 * at run time, the command's errors (no app, no --out, a folder that cannot
 * be written, a broken function keeps the previous files, a function and a
 * module folder of the same name).
 *
 * Run as: node test_codegen.mjs <herald> <source root>
 * Needs convex, react's types and typescript (npm ci in tests/js); exits 77
 * (skipped) without them.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { checker } from './lib.mjs';

const [herald, root] = process.argv.slice(2);
if (!herald || !root) {
  console.log('usage: node test_codegen.mjs <herald> <source root>');
  process.exit(2);
}
const MODULES = join(dirname(fileURLToPath(import.meta.url)), 'node_modules');
const TSC = join(MODULES, '.bin', 'tsc');
for (const need of [TSC, join(MODULES, 'convex', 'package.json'), join(MODULES, '@types', 'react')]) {
  if (!existsSync(need)) {
    console.log(`${need} is missing (npm ci in tests/js): skipped`);
    process.exit(77);
  }
}

const { check, failures, passed } = checker();
const dir = mkdtempSync(join(tmpdir(), 'herald-codegen-'));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120000, ...opts });
  return { code: r.status, out: (r.stdout || '') + (r.stderr || '') };
}

/* A frontend project: convex/_generated from `app`, src/ for the files under test. */
function project(name, app) {
  const p = join(dir, name);
  mkdirSync(join(p, 'src'), { recursive: true });
  symlinkSync(MODULES, join(p, 'node_modules'));
  const r = run(herald, ['codegen', '--app', app, '--out', join(p, 'convex', '_generated')]);
  check(r.code === 0, `${name}: herald codegen succeeds (exit ${r.code}: ${r.out.trim()})`);
  for (const f of ['api.js', 'api.d.ts', 'dataModel.d.ts'])
    check(existsSync(join(p, 'convex', '_generated', f)), `${name}: ${f} written`);
  return p;
}

/* Runs tsc --noEmit over src/<file> (and the generated files, which are not skipped as libraries). */
function tsc(p, file) {
  const config = {
    compilerOptions: {
      target: 'ES2022', module: 'ESNext', moduleResolution: 'bundler', jsx: 'react-jsx',
      strict: true, noEmit: true, skipLibCheck: false, lib: ['ES2022', 'DOM'], types: [],
    },
    files: [`src/${file}`, 'convex/_generated/api.d.ts', 'convex/_generated/dataModel.d.ts'],
  };
  const cfg = join(p, `tsconfig.${file}.json`);
  writeFileSync(cfg, JSON.stringify(config, null, 2));
  return run(TSC, ['-p', cfg], { cwd: p });
}

function passes(p, file, text) {
  writeFileSync(join(p, 'src', file), text);
  const r = tsc(p, file);
  check(r.code === 0, `${file}: tsc --noEmit passes (exit ${r.code})\n${r.out}`);
}

/* Each mistake in a file of its own, so that one diagnostic cannot hide another. */
function fails(p, file, text, diagnostic) {
  writeFileSync(join(p, 'src', file), text);
  const r = tsc(p, file);
  check(r.code !== 0 && r.code !== null, `${file}: tsc --noEmit fails (exit ${r.code})`);
  check(r.out.includes(diagnostic), `${file}: tsc reports ${JSON.stringify(diagnostic)}\n${r.out}`);
  check(r.out.includes(`src/${file}(`), `${file}: the diagnostic is in the caller, not in the generated files\n${r.out}`);
}

try {
  /* ---------------------------------------------------- twitch-jobs */
  const jobs = project('jobs', join(root, 'examples', 'twitch-jobs'));
  const jobsImports = `import { useQuery, useMutation } from "convex/react";
import { api } from "../convex/_generated/api";
`;
  passes(jobs, 'ok.tsx', `${jobsImports}import { ConvexHttpClient } from "convex/browser";
import type { Doc, Id } from "../convex/_generated/dataModel";

export function Job({ jobId }: { jobId: string }) {
  const job = useQuery(api.videos.getJobById, { jobId: "x" });
  const create = useMutation(api.videos.create);
  const progress = useMutation(api.videos.updateJobProgress);
  return (
    <button onClick={() => void create({ twitchId: "t", title: jobId }).then(() =>
      progress({ twitchId: "t", jobId, progressPercentage: 50, stageProgress: {} }))}>
      {job?.title}
    </button>
  );
}

export async function worker(url: string, doc: Doc<"videos">) {
  const client = new ConvexHttpClient(url);
  const id: Id<"videos"> = doc._id;
  const created: number = doc._creationTime;
  const percent: number | undefined = doc.progressPercentage;
  await client.mutation(api.videos.updateJobError, {
    twitchId: doc.twitchId, jobId: "j", errorType: "E", errorMessage: "m", isRetryable: true,
  });
  return [id, created, percent, await client.query(api.videos.list, {})];
}
`);
  fails(jobs, 'missing_function.tsx', `${jobsImports}
export function A() { return useQuery(api.videos.getJobByIdd, { jobId: "x" }); }
`, "Property 'getJobByIdd' does not exist");
  fails(jobs, 'wrong_type.tsx', `${jobsImports}
export function A() { return useQuery(api.videos.getJobById, { jobId: 42 }); }
`, "error TS2322: Type 'number' is not assignable to type 'string'");
  fails(jobs, 'missing_argument.tsx', `${jobsImports}
export function A() { const create = useMutation(api.videos.create); return () => create({ title: "x" }); }
`, "Property '\"twitchId\"' is missing");
  fails(jobs, 'query_as_mutation.tsx', `${jobsImports}
export function A() { return useMutation(api.videos.getJobById); }
`, `Type '"query"' is not assignable to type '"mutation"'`);
  fails(jobs, 'wrong_module.tsx', `${jobsImports}
export function A() { return useQuery(api.jobs.getJobById, { jobId: "x" }); }
`, "error TS2339: Property 'jobs' does not exist");

  /* At run time api.js is Convex's anyApi: references name Herald's paths. */
  const { getFunctionName } = await import(pathToFileURL(join(MODULES, 'convex', 'dist', 'esm', 'server', 'index.js')).href);
  const { api, internal } = await import(pathToFileURL(join(jobs, 'convex', '_generated', 'api.js')).href);
  check(getFunctionName(api.videos.getJobById) === 'videos:getJobById', 'api.js: api.videos.getJobById is "videos:getJobById"');
  check(getFunctionName(internal.admin.tools.reset) === 'admin/tools:reset', 'api.js: nested modules are "folder/file:fn"');

  /* ------------------------------------------------- seed 004 (social) */
  const social = project('social', join(root, 'examples', 'social'));
  passes(social, 'feed.tsx', `import { useQuery, useMutation, usePaginatedQuery } from "convex/react";
import { api } from "../convex/_generated/api";
import type { Doc, Id } from "../convex/_generated/dataModel";

export function Feed({ media }: { media: Id<"_storage">[] }) {
  const { results, status, loadMore } = usePaginatedQuery(api.posts.feed, {}, { initialNumItems: 10 });
  const mine = useQuery(api.profiles.getMine, {});
  const post = useMutation(api.posts.create);
  const send = useMutation(api.messages.send);
  const first: Doc<"posts"> | undefined = results[0];
  return (
    <div onClick={() => { void post({ text: "hi", mediaIds: media }); loadMore(10); }}>
      {status} {mine?.displayName} {first?.text}
      <button onClick={(e) => void send({ conversationId: e.currentTarget.id as Id<"conversations">, text: "t" })} />
    </div>
  );
}
`);
  fails(social, 'wrong_id.tsx', `import { useMutation } from "convex/react";
import { api } from "../convex/_generated/api";
import type { Id } from "../convex/_generated/dataModel";
export function A(post: Id<"posts">) {
  const send = useMutation(api.messages.send);
  return () => send({ conversationId: post, text: "t" });
}
`, "error TS2322");

  /* ----------------------------------------- every validator kind */
  const kinds = project('kinds', join(root, 'tests', 'fixtures', 'codegen'));
  const kindsImports = `import { useQuery, useMutation } from "convex/react";
import { api, internal } from "../convex/_generated/api";
`;
  passes(kinds, 'kinds.tsx', `${kindsImports}import { usePaginatedQuery } from "convex/react";
import type { FunctionArgs, FunctionReturnType, PaginationOptions } from "convex/server";
import type { DataModel, Doc, Id, TableNames } from "../convex/_generated/dataModel";

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

export function useAll(user: Id<"users">) {
  const r = useQuery(api.kinds.echo, {
    s: "s", n: 1.5, i: 3n, b: true, z: null, bytes: new ArrayBuffer(1), anything: { x: [1] }, user,
    lit: "a", five: 5, big: 7n, yes: true, list: ["a", 1], obj: { deep: { x: 1 } }, rec: {},
    maybe: null,
  });
  const count: bigint | undefined = r?.count;
  const owner: Id<"users"> | null | undefined = r?.owner;
  const add = useMutation(api.kinds.add);
  const made: Promise<Id<"users">> = add({ name: "n", role: "guest" });
  const n = useQuery(api.kinds.noArgs);
  const d: "x"[] | undefined = useQuery(api.kinds.default, {});
  const page = usePaginatedQuery(api.kinds.page, {}, { initialNumItems: 5 });
  return [count, owner, made, n, d, page.results];
}

export const checks: true[] = [
  true as Equals<FunctionReturnType<typeof internal.kinds.secret>, string>,
  true as Equals<FunctionArgs<typeof internal.kinds.secret>, { key: string }>,
  true as Equals<FunctionReturnType<typeof internal.kinds.touch>, null>,
  true as Equals<FunctionArgs<typeof api.kinds.echo>["maybe"], string | null | undefined>,
  true as Mutual<Omit<FunctionArgs<typeof api.kinds.page>["paginationOpts"], "id">, PaginationOptions>,
  true as Equals<FunctionArgs<typeof api.kinds.echo>["rec"], Record<Id<"users">, boolean>>,
  true as Equals<TableNames, "blobs" | "events" | "users">,
  true as Equals<Doc<"users">["visits"], bigint>,
  true as Equals<Doc<"users">["avatar"], ArrayBuffer | undefined>,
  true as Equals<Doc<"users">["role"], "owner" | "guest">,
  true as Equals<Doc<"users">["manager"], Id<"users"> | null>,
  true as Equals<Doc<"users">["prefs"], Record<string, number>>,
  true as Equals<Doc<"users">["_id"], Id<"users">>,
  true as Equals<Doc<"blobs">, any>,
  true as Equals<DataModel["users"]["indexes"]["by_city_age"], ["address.city", "age", "_creationTime"]>,
  true as Equals<DataModel["users"]["searchIndexes"]["search_name"]["filterFields"], "admin">,
];

export function eventText(e: Doc<"events">): string {
  return e.kind === "click" ? e.x.toFixed() : e.page;
}
`);
  fails(kinds, 'internal_via_api.tsx', `${kindsImports}
export function A() { return [internal, useQuery(api.kinds.secret, { key: "k" })]; }
`, "error TS2339: Property 'secret' does not exist");
  fails(kinds, 'literal.tsx', `${kindsImports}
export function A() { const add = useMutation(api.kinds.add); return () => add({ name: "n", role: "admin" }); }
`, `error TS2322: Type '"admin"' is not assignable to type`);
  fails(kinds, 'int64.tsx', `${kindsImports}
export function A(r: NonNullable<ReturnType<typeof useQuery<typeof api.kinds.echo>>>) { const n: number = r.count; return n; }
`, "Type 'bigint' is not assignable to type 'number'");

  /* A module in a folder: functions/admin/tools.lua is api.admin.tools. */
  passes(kinds, 'nested.tsx', `${kindsImports}
export function A() { const reset = useMutation(api.admin.tools.reset); return () => reset({ confirm: true }); }
`);
  fails(kinds, 'nested_literal.tsx', `${kindsImports}
export function A() { const reset = useMutation(api.admin.tools.reset); return () => reset({ confirm: false }); }
`, "Type 'false' is not assignable to type 'true'");

  /* A function and a folder of modules cannot share a name in `api`. */
  let r;
  const clash = join(dir, 'clash-app');
  mkdirSync(join(clash, 'functions', 'a'), { recursive: true });
  writeFileSync(join(clash, 'schema.json'), '{"tables": {}}');
  writeFileSync(join(clash, 'functions', 'a.lua'), 'return {b = herald.query{handler = function() end}}\n');
  writeFileSync(join(clash, 'functions', 'a', 'b.lua'), 'return {c = herald.query{handler = function() end}}\n');
  r = run(herald, ['codegen', '--app', clash, '--out', join(dir, 'clash-out')]);
  check(r.code === 1 && r.out.includes('InvalidArgument: a:b: the module a/b exists too'),
    `a/b:c beside a:b is refused (exit ${r.code}: ${r.out.trim()})`);
  check(!existsSync(join(dir, 'clash-out')), 'nothing is written for it');

  /* ------------------------------------------------------- errors */
  r = run(herald, ['codegen', '--out', join(dir, 'x')]);
  check(r.code === 2 && r.out.includes('codegen: needs --app DIR'), `no app: usage error (exit ${r.code}: ${r.out.split('\n')[0]})`);
  r = run(herald, ['--app', join(root, 'examples', 'twitch-jobs'), 'codegen']);
  check(r.code === 2 && r.out.includes('needs --out DIR'), `no --out: usage error (exit ${r.code})`);
  r = run(herald, ['codegen', '--app', join(dir, 'nowhere'), '--out', join(dir, 'x')]);
  check(r.code === 1 && r.out.includes('has no schema.json or schema.ts'), `an app folder without a schema (exit ${r.code}: ${r.out.trim()})`);
  writeFileSync(join(dir, 'file'), 'not a folder');
  r = run(herald, ['codegen', '--app', join(root, 'examples', 'twitch-jobs'), '--out', join(dir, 'file', 'gen')]);
  check(r.code === 1 && r.out.includes(`${join(dir, 'file')} is not a folder`), `an output under a file (exit ${r.code}: ${r.out.trim()})`);

  /* A function that does not load leaves the previous files as they were. */
  const broken = join(dir, 'broken-app');
  mkdirSync(join(broken, 'functions'), { recursive: true });
  writeFileSync(join(broken, 'schema.ts'), readFileSync(join(root, 'examples', 'twitch-jobs', 'schema.ts')));
  writeFileSync(join(broken, 'functions', 'videos.lua'), 'return {get = herald.query{handler = function() end}}\n');
  const out = join(dir, 'broken-out');
  r = run(herald, ['codegen', '--app', broken, '--out', out]);
  check(r.code === 0, `a one-function app (exit ${r.code}: ${r.out.trim()})`);
  const before = readFileSync(join(out, 'api.d.ts'), 'utf8');
  check(before.includes('"get": FunctionReference<"query", "public", any, any>'), 'a function without args or returns is FunctionReference<"query", "public", any, any>');
  writeFileSync(join(broken, 'functions', 'videos.lua'), 'return {get = herald.query{handler = function() end}\n');
  r = run(herald, ['codegen', '--app', broken, '--out', out]);
  check(r.code === 1 && r.out.includes('functions/videos.lua'), `a syntax error fails, naming the file (exit ${r.code}: ${r.out.trim()})`);
  check(readFileSync(join(out, 'api.d.ts'), 'utf8') === before, 'the previous api.d.ts is kept');
  check(!/\.tmp$/m.test(run('ls', ['-a', out]).out), 'no temporary file left behind');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`codegen: ${passed()} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
