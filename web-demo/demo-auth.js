/*
 * The demo's sign-in: the page mints its own JWT.
 *
 *   !!! WARNING: NEVER DO THIS IN A REAL APP. !!!
 *
 * The HS256 secret below is the same one as in examples/demo/keys/demo.jwks.json,
 * and it is public ON PURPOSE: the web demo has no login server, so the page
 * signs its own tokens. Anyone who reads this file can sign in as anyone on a
 * Herald that trusts this key. A real app never ships a signing secret to a
 * browser: users sign in with an identity provider (Auth0, Clerk, Better Auth,
 * or the app's own backend), which holds the private key and hands the browser
 * a signed token; Herald holds only the public key (docs/auth.md).
 *
 * Tokens are signed with WebCrypto (crypto.subtle HMAC SHA-256), which browsers
 * offer in secure contexts (https, http://localhost, http://127.0.0.1). Opened
 * from another address over plain http (a phone on the LAN), the page falls
 * back to the small SHA-256 below, so the demo still works there.
 */

export const DEMO_ISSUER = 'https://demo.herald.invalid';
export const DEMO_AUDIENCE = 'herald-demo';
const DEMO_KID = 'demo';
/* base64url of "herald-demo: this HS256 secret is public on purpose; never ship a signing secret to browsers" */
const DEMO_SECRET =
  'aGVyYWxkLWRlbW86IHRoaXMgSFMyNTYgc2VjcmV0IGlzIHB1YmxpYyBvbiBwdXJwb3NlOyBuZXZlciBzaGlwIGEgc2lnbmluZyBzZWNyZXQgdG8gYnJvd3NlcnM';
export const TOKEN_LIFETIME_SECONDS = 3600;

const encoder = new TextEncoder();

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromBase64url(text) {
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/* "Alice Smith" -> "alice-smith": the part of the subject after "demo|". */
export function userSlug(name) {
  return name.trim().toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40);
}

/*
 * A signed token for the demo user `name`: {sub: "demo|<slug>", name, email, iat, exp},
 * valid for an hour. Resolves to {token, exp} (exp in seconds since the epoch).
 */
export async function mintDemoToken(name, nowSeconds = Math.floor(Date.now() / 1000)) {
  const slug = userSlug(name);
  if (!slug) throw new Error('a name needs at least one letter or digit');
  const header = { alg: 'HS256', typ: 'JWT', kid: DEMO_KID };
  const exp = nowSeconds + TOKEN_LIFETIME_SECONDS;
  const payload = {
    iss: DEMO_ISSUER,
    aud: DEMO_AUDIENCE,
    sub: `demo|${slug}`,
    name: name.trim(),
    email: `${slug}@demo.herald.invalid`,
    iat: nowSeconds,
    exp,
  };
  const signingInput = `${base64url(encoder.encode(JSON.stringify(header)))}.${base64url(encoder.encode(JSON.stringify(payload)))}`;
  const signature = await hmacSha256(fromBase64url(DEMO_SECRET), encoder.encode(signingInput));
  return { token: `${signingInput}.${base64url(signature)}`, exp };
}

async function hmacSha256(keyBytes, data) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (subtle) {
    const key = await subtle.importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new Uint8Array(await subtle.sign('HMAC', key, data));
  }
  return hmacFallback(keyBytes, data);
}

/* HMAC (RFC 2104) over the SHA-256 below, for pages outside a secure context. */
function hmacFallback(keyBytes, data) {
  let key = keyBytes.length > 64 ? sha256(keyBytes) : keyBytes;
  const inner = new Uint8Array(64 + data.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    const k = i < key.length ? key[i] : 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  inner.set(data, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/* SHA-256 (FIPS 180-4) of a Uint8Array; a Uint8Array of 32 bytes. */
export function sha256(message) {
  const bitLength = message.length * 8;
  const padded = new Uint8Array(((message.length + 9 + 63) >> 6) << 6);
  padded.set(message);
  padded[message.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 0x100000000));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      hh = g; g = f; f = e; e = (d + t1) >>> 0;
      d = c; c = b; b = a; a = (t1 + t2) >>> 0;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  const outView = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i]);
  return out;
}

export const _testing = { hmacFallback, base64url };
