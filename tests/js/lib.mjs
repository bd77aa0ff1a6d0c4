/*
 * Shared pieces of the Node tests (test_client.mjs, test_admin.mjs,
 * test_demo.mjs): skipping when a package is missing, collecting failed
 * checks, a free port, and starting and stopping `herald ... serve`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createServer } from 'node:net';

/* The browser the Playwright tests drive (Debian's chromium). */
export const CHROMIUM = '/usr/bin/chromium';

/*
 * Imports the named packages (from tests/js/node_modules) and resolves with
 * their modules in the same order. When one is missing, or when `chromium`
 * is set and CHROMIUM is not there, says so and exits 77 (skipped).
 */
export async function importOrSkip(packages, { chromium = false } = {}) {
  const modules = [];
  try {
    for (const p of packages) modules.push(await import(p));
  } catch {
    console.log(`${packages.join(' or ')} is missing (npm ci in tests/js): skipped`);
    process.exit(77);
  }
  if (chromium && !existsSync(CHROMIUM)) {
    console.log(`${CHROMIUM} is missing: skipped`);
    process.exit(77);
  }
  return modules;
}

/*
 * check(cond, what) records `what` as a failure when cond is falsy (and
 * prints it), and returns cond. `failures` is the list of those; passed()
 * counts the checks that held. With HERALD_TEST_VERBOSE set, every check
 * is printed with the seconds since checker() was called.
 */
export function checker() {
  const t0 = Date.now();
  const failures = [];
  let passed = 0;
  const check = (cond, what) => {
    if (process.env.HERALD_TEST_VERBOSE) console.log(`${((Date.now() - t0) / 1000).toFixed(1)}s ${cond ? 'ok' : 'FAIL'}: ${what}`);
    if (cond) passed++;
    else {
      failures.push(what);
      console.log('FAIL:', what);
    }
    return cond;
  };
  return { check, failures, passed: () => passed };
}

/* A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/*
 * Runs `herald ...args` (args hold `--data DIR` and end in `serve ...`) and
 * resolves once it prints "listening on", with { proc, key, output }: key
 * is the admin key, read from DIR/admin.key where the server's first start
 * wrote it (it never prints the key), or null; output() is everything
 * it has written to stdout and stderr so far. onOutput(chunk) sees every
 * chunk of both, for as long as the server runs. Rejects, with the output,
 * if the server exits first or has not started in 30 s.
 */
/* The admin key of data folder `data`, from the file (mode 0600) Herald wrote it to; or null. */
export function adminKey(data) {
  try {
    return readFileSync(join(data, 'admin.key'), 'utf8').trim();
  } catch {
    return null;
  }
}

export function startHerald(herald, args, { onOutput } = {}) {
  const proc = spawn(herald, args);
  let all = '';
  let stdout = '';
  let key = null;
  let started = false;
  const output = () => all;
  const note = (d) => {
    all += d;
    if (onOutput) onOutput(d);
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${all}`)), 30000);
    proc.stdout.on('data', (d) => {
      note(d);
      if (started) return;
      stdout += d;
      if (stdout.includes('listening on')) {
        started = true;
        clearTimeout(timer);
        key = adminKey(args[args.indexOf('--data') + 1]);
        resolve({ proc, key, output });
      }
    });
    proc.stderr.on('data', note);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited ${code}: ${all}`));
    });
  });
}

/*
 * Stops a child process with SIGTERM and resolves with its exit code (the
 * signal's name if a signal ended it), once its output is all read (a
 * sanitizer reports at exit). A process that has already ended resolves
 * with its exit code at once.
 */
export function stopProcess(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve(proc.exitCode);
      return;
    }
    proc.removeAllListeners('exit');
    proc.on('close', (code, signal) => resolve(signal ? signal : code));
    proc.kill('SIGTERM');
  });
}

/*
 * Where the browser tests save their screenshots: HERALD_SCREENSHOT_DIR
 * (meson sets it to the build folder's tests/screenshots; scripts/screenshots
 * to docs/screenshots, to refresh the docs' images), else `screenshots` in the
 * folder of the `herald` binary under test. Never the source tree by default,
 * so that a test run leaves `git status` as it was. Created if missing.
 */
export function screenshotDir(herald) {
  const dir = process.env.HERALD_SCREENSHOT_DIR || join(dirname(herald), 'screenshots');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/* Headless Chromium as the browser tests run it (Debian's, no sandbox, no GPU, no network chatter). */
export function launchChromium(chromium) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/*
 * A page of `context` that records, as failed checks, script errors and any
 * request that does not go to `base` (Herald) or a data: URL; console errors
 * are printed.
 */
export async function watchedPage(context, name, base, check) {
  const page = await context.newPage();
  page.on('pageerror', (e) => check(false, `${name}: script error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`${name} console: ${m.text()}`);
  });
  page.on('request', (r) => {
    const url = r.url();
    if (!url.startsWith(base) && !url.startsWith('data:')) check(false, `${name}: request outside Herald: ${url}`);
  });
  return page;
}
