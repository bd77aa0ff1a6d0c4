/*
 * File storage end to end in headless Chromium: tests/js/storage_page, a
 * small page on examples/social (seed 004) served by Herald itself
 * (--static), where a signed-in user picks an image (Playwright's
 * setInputFiles), the page asks media:generateUploadUrl for an upload URL,
 * POSTs the file with fetch, saves the storage id with
 * profiles:upsertMine {avatarId}, and an <img> shows it from the avatarUrl
 * (ctx.storage:getUrl) that the live profiles:getMine hands out. It checks:
 *
 *   1. the image loaded in the page (naturalWidth and naturalHeight are the
 *      PNG's), and its bytes, fetched by the page and by Node, are the file's;
 *   2. the server has the same avatarId on the profile, and its URL serves
 *      Content-Type image/png;
 *   3. picking another image replaces the avatar live (the page is not
 *      reloaded), and the old image's URL is then 404;
 *   4. a text file is refused (the page shows the app's error) and the
 *      avatar stays;
 *   5. another user (Bob, another browser context) is handed Alice's avatar
 *      URL by profiles:getByUserId and his browser loads it, but the URL
 *      with a changed token, or with his own file's token on her file's id
 *      (and hers on his), is 404.
 *
 * Every request of the page goes to Herald; no script error.
 *
 *   node tests/js/test_storage_page.mjs path/to/herald path/to/source
 * Needs playwright-core (npm ci in tests/js) and /usr/bin/chromium; exits 77
 * (skipped) without them.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { deflateSync } from 'node:zlib';
import { checker, freePort, importOrSkip, startHerald, stopProcess, launchChromium, watchedPage } from './lib.mjs';

const [{ chromium }] = await importOrSkip(['playwright-core'], { chromium: true });
const [herald, rootArg] = process.argv.slice(2);
if (!herald || !rootArg) {
  console.log('usage: node test_storage_page.mjs <herald> <source root>');
  process.exit(2);
}
const root = resolve(rootArg);
const HERE = dirname(fileURLToPath(import.meta.url));
const { mintDemoToken } = await import(pathToFileURL(join(root, 'web-demo', 'demo-auth.js')).href);
const { check, failures, passed } = checker();

/* ---- PNGs made here: 8-bit RGB, pixels from a seed ---- */

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(kind, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(kind, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
function png(width, height, seed) {
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    const row = y * (1 + width * 3);
    for (let x = 0; x < width; x++) {
      raw[row + 1 + x * 3] = (x * 7 + y * 13 + seed * 31) % 256;
      raw[row + 2 + x * 3] = (x * 5 + seed) % 256;
      raw[row + 3 + x * 3] = (y * 3) % 256;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

/* ---- the app (examples/social trusting the web demo's public key) and the page ---- */

const work = mkdtempSync(join(tmpdir(), 'herald-storage-page-'));
const app = join(work, 'app');
cpSync(join(root, 'examples', 'social'), app, { recursive: true });
cpSync(join(root, 'examples', 'demo', 'keys', 'demo.jwks.json'), join(app, 'keys', 'demo.jwks.json'));
cpSync(join(root, 'examples', 'demo', 'auth.config.json'), join(app, 'auth.config.json'));
const www = join(work, 'www');
cpSync(join(HERE, 'storage_page'), www, { recursive: true });
for (const f of ['herald.js', 'herald-diff.js', 'demo-auth.js']) cpSync(join(root, 'web-demo', f), join(www, f));

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
let serverOut = '';
let server = null;
let browser = null;

async function api(kind, path, args, token) {
  const res = await fetch(`${base}/api/${kind}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ path, args }),
  });
  return res.json();
}

/* Waits for pred() (sync or async) to be truthy; the timeout is only a guard. */
async function until(pred, what, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) {
      check(false, `timed out waiting for ${what}`);
      return null;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const newPage = (context, name) => watchedPage(context, name, base, check);

/* The avatar <img> as the page shows it. */
const avatar = (page) => page.evaluate(() => {
  const img = document.getElementById('avatar');
  return { src: img.currentSrc || img.src, hidden: img.hidden, complete: img.complete,
    width: img.naturalWidth, height: img.naturalHeight, storageId: img.dataset.storageId };
});

/*
 * The bytes at `url`, fetched by the page itself (base64), from the server:
 * a file's URL is cached for a year (its bytes never change), so without
 * no-store a deleted file's old URL still answers from the browser's cache.
 */
const pageBytes = (page, url) => page.evaluate(async (u) => {
  const res = await fetch(u, { cache: 'no-store' });
  const buf = new Uint8Array(await res.arrayBuffer());
  let s = '';
  for (const b of buf) s += String.fromCharCode(b);
  return { status: res.status, type: res.headers.get('Content-Type'), b64: btoa(s) };
}, url);

async function pick(page, name, mimeType, buffer) {
  await page.setInputFiles('#file', { name, mimeType, buffer });
}

async function main() {
  const started = await startHerald(herald, ['--data', join(work, 'data'), '--app', app, '--no-sync', 'serve',
    '--port', String(port), '--static', www, '--public-url', base], { onOutput: (d) => { serverOut += d; } });
  server = started.proc;
  browser = await launchChromium(chromium);
  const alice = await browser.newContext();
  const page = await newPage(alice, 'alice');
  await page.goto(`${base}/`);
  await page.click('#sign-in');
  await page.waitForSelector('#who[data-state="signed-in"]', { timeout: 15000 });
  await page.waitForSelector('#no-avatar:not([hidden])', { timeout: 15000 });
  await page.evaluate(() => { window.__notReloaded = true; });

  /* 1, 2: the first avatar. */
  const first = png(32, 24, 1);
  await pick(page, 'first.png', 'image/png', first);
  await page.waitForSelector('#status[data-state="saved"], #status[data-state="error"]', { timeout: 15000 });
  check((await page.getAttribute('#status', 'data-state')) === 'saved', `the page saved the upload: ${await page.textContent('#status')}`);
  const a1 = await until(async () => {
    const a = await avatar(page);
    return a.src && !a.hidden && a.complete && a.width > 0 ? a : null;
  }, 'the avatar to load');
  check(a1 && a1.width === 32 && a1.height === 24, `the <img> loaded the PNG: ${JSON.stringify(a1)}`);
  check(a1 && a1.src.startsWith(`${base}/api/storage/${a1.storageId}/`), `the <img> shows the URL getUrl made: ${a1 && a1.src}`);
  const sid1 = await page.getAttribute('#status', 'data-storage-id');
  check(a1 && sid1 === a1.storageId, `the uploaded id is the profile's avatarId: ${sid1}`);
  if (a1) {
    const inPage = await pageBytes(page, a1.src);
    check(inPage.status === 200 && inPage.type === 'image/png' && Buffer.from(inPage.b64, 'base64').equals(first),
      `the page fetches the same bytes it uploaded (${inPage.status} ${inPage.type})`);
    const res = await fetch(a1.src);
    const body = Buffer.from(await res.arrayBuffer());
    check(res.status === 200 && body.equals(first) && res.headers.get('content-length') === String(first.length),
      `Node reads the avatar byte for byte (${res.status}, ${body.length} of ${first.length} bytes)`);
  }
  const { token: aliceToken } = await mintDemoToken('Alice');
  const mine = await api('query', 'profiles:getMine', {}, aliceToken);
  check(mine.value && mine.value.avatarId === sid1 && mine.value.avatarUrl === (a1 && a1.src),
    `the server's profile has the avatar the page shows: ${JSON.stringify(mine)}`);

  /* 4: not an image. */
  await pick(page, 'notes.txt', 'text/plain', Buffer.from('not a picture\n'));
  await page.waitForSelector('#status[data-state="error"]', { timeout: 15000 });
  check((await page.textContent('#status')).includes('image/'), `a text file is refused with the app's reason: ${await page.textContent('#status')}`);
  check((await avatar(page)).src === (a1 && a1.src), 'the avatar stays after the refusal');

  /* 3: replace, live. */
  const second = png(48, 40, 2);
  await pick(page, 'second.png', 'image/png', second);
  const a2 = await until(async () => {
    const a = await avatar(page);
    return a.src && a1 && a.src !== a1.src && a.complete && a.width > 0 ? a : null;
  }, 'the new avatar to load');
  check(a2 && a2.width === 48 && a2.height === 40, `the <img> shows the new PNG: ${JSON.stringify(a2)}`);
  if (a2) {
    const inPage = await pageBytes(page, a2.src);
    check(inPage.status === 200 && Buffer.from(inPage.b64, 'base64').equals(second), 'the new avatar\'s bytes are the second file');
  }
  if (a1) {
    const old = await pageBytes(page, a1.src);
    check(old.status === 404, `the replaced avatar's URL is 404 (${old.status})`);
  }
  check(await page.evaluate(() => window.__notReloaded === true), 'the page was never reloaded');

  /* 5: Bob gets Alice's avatar URL from the app, and nothing more from it. */
  const bob = await browser.newContext();
  const bobPage = await newPage(bob, 'bob');
  await bobPage.goto(`${base}/`);
  const { token: bobToken } = await mintDemoToken('Bob');
  const seen = await api('query', 'profiles:getByUserId', { userId: 'demo|alice' }, bobToken);
  check(seen.value && a2 && seen.value.avatarUrl === a2.src, `Bob is handed Alice's avatar URL: ${JSON.stringify(seen.value)}`);
  if (a2) {
    const ok = await pageBytes(bobPage, a2.src);
    check(ok.status === 200 && Buffer.from(ok.b64, 'base64').equals(second), 'Bob\'s browser loads the URL he was handed');
    const [prefix, token] = [a2.src.slice(0, a2.src.lastIndexOf('/') + 1), a2.src.slice(a2.src.lastIndexOf('/') + 1)];
    const i = token.length >> 1;
    const forged = await pageBytes(bobPage, prefix + token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1));
    check(forged.status === 404, `a changed token is 404 (${forged.status})`);
    /* Bob's own avatar (uploaded from Node as a client would): its token opens only it. */
    const up = await api('mutation', 'media:generateUploadUrl', {}, bobToken);
    const res = await fetch(up.value, { method: 'POST', headers: { 'Content-Type': 'image/png' }, body: png(8, 8, 3) });
    const { storageId: bobSid } = await res.json();
    await api('mutation', 'profiles:upsertMine', { displayName: 'Bob', avatarId: bobSid }, bobToken);
    const bobUrl = (await api('query', 'profiles:getMine', {}, bobToken)).value?.avatarUrl || '';
    const bobToken2 = bobUrl.slice(bobUrl.lastIndexOf('/') + 1);
    check(bobUrl.startsWith(`${base}/api/storage/${bobSid}/`) && (await pageBytes(bobPage, bobUrl)).status === 200,
      `Bob's own avatar is served: ${bobUrl}`);
    const swapped = await pageBytes(bobPage, `${base}/api/storage/${a2.storageId}/${bobToken2}`);
    check(swapped.status === 404, `Bob's token on Alice's file id is 404 (${swapped.status})`);
    const swapped2 = await pageBytes(bobPage, `${base}/api/storage/${bobSid}/${token}`);
    check(swapped2.status === 404, `Alice's token on Bob's file id is 404 (${swapped2.status})`);
  }
  await bob.close();
  await alice.close();
}

let crashed = null;
try {
  await main();
} catch (e) {
  crashed = e;
  check(false, `the test stopped: ${e.stack || e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) {
    const code = await stopProcess(server);
    check(code === 0, `the server stops cleanly on SIGTERM (exit ${code})`);
  }
  check(!/AddressSanitizer|LeakSanitizer|runtime error:/.test(serverOut), 'no sanitizer report in the server\'s output');
  if (failures.length) console.log('--- server output ---\n' + serverOut.slice(-4000));
  rmSync(work, { recursive: true, force: true });
}
console.log(`storage page: ${passed()} passed, ${failures.length} failed`);
process.exit(failures.length || crashed ? 1 : 0);
