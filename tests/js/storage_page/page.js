/*
 * The avatar page (index.html): sign-in with the web demo's token minting
 * (web-demo/demo-auth.js, a public HS256 key: a test page, never a real
 * app), the upload in three steps (an upload URL from a mutation, a POST of
 * the file's bytes, the storage id saved by a mutation), and the avatar
 * shown from the URL the profile query hands out. The test copies
 * herald.js, herald-diff.js and demo-auth.js from web-demo/ beside it.
 */
import { connect } from './herald.js';
import { mintDemoToken } from './demo-auth.js';

const $ = (id) => document.getElementById(id);
const db = connect(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
let displayName = null;

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
}

/* Renders the profile query's value: the avatar from avatarUrl. */
function showProfile(profile) {
  const img = $('avatar');
  const url = profile && profile.avatarUrl;
  img.dataset.storageId = (profile && profile.avatarId) || '';
  if (url) {
    if (img.getAttribute('src') !== url) img.src = url;
    img.hidden = false;
  } else {
    img.removeAttribute('src');
    img.hidden = true;
  }
  $('no-avatar').hidden = Boolean(url);
}

async function signIn(name) {
  const { token } = await mintDemoToken(name);
  await db.setAuth(token);
  displayName = name;
  /* A first visit makes the profile the avatar is stored on. */
  const { value: mine } = await db.query('profiles:getMine', {});
  if (!mine) await db.mutation('profiles:upsertMine', { displayName });
  $('who').dataset.state = 'signed-in';
  $('who').textContent = `Signed in as ${name}.`;
  $('profile').hidden = false;
  db.subscribe('profiles:getMine', {}, showProfile, (e) => setStatus('error', e.message));
}

async function upload(file) {
  setStatus('uploading', `Uploading ${file.name} (${file.size} bytes)…`);
  try {
    const { value: url } = await db.mutation('media:generateUploadUrl', {});
    const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': file.type || 'application/octet-stream' }, body: file });
    const reply = await res.json().catch(() => ({}));
    if (!res.ok || !reply.storageId) throw new Error(`upload refused (${res.status}): ${reply.errorMessage || ''}`);
    await db.mutation('profiles:upsertMine', { displayName, avatarId: reply.storageId });
    $('status').dataset.storageId = reply.storageId;
    setStatus('saved', `Saved ${file.name}.`);
  } catch (e) {
    setStatus('error', e.message);
  }
}

$('sign-in').addEventListener('click', () => signIn('Alice').catch((e) => setStatus('error', e.message)));
$('file').addEventListener('change', (ev) => {
  const [file] = ev.target.files;
  if (file) upload(file);
  ev.target.value = '';
});
