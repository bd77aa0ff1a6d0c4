/*
 * What the demo's pages share: the connection to Herald (herald.js), the demo
 * sign-in (demo-auth.js) and its menu, the connection status, the navigation,
 * toasts and a few formatters. Each page calls startApp() once.
 */
import { connect } from './herald.js';
import { mintDemoToken, userSlug, TOKEN_LIFETIME_SECONDS } from './demo-auth.js';

const USER_KEY = 'herald-demo.user';
export const DEMO_USERS = ['Alice', 'Bob'];

export function wsUrl() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/* el('li', {class: 'job', dataset: {id}}, child, 'text', ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'style') node.style.cssText = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export function toast(message, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = el('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = el('div', { class: `toast toast-${kind}` }, message);
  box.append(t);
  while (box.children.length > 2) box.firstChild.remove();
  setTimeout(() => t.classList.add('toast-out'), kind === 'error' ? 6000 : 3500);
  setTimeout(() => t.remove(), kind === 'error' ? 6600 : 4100);
}

/* A HeraldError as people read it: the function's own message, its code when it has one. */
export function describeError(e) {
  const code = e && e.data && e.data.code ? e.data.code : e && e.code;
  const message = (e && (e.data && e.data.message ? e.data.message : e.message)) || String(e);
  return { code, message: message.replace(/^functions\/[\w.]+:\d+: /, '') };
}

export function formatDuration(seconds) {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return '';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatAgo(ms) {
  if (!ms) return '';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(ms).toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}

/* Keeps every [data-ago] element's text current. */
setInterval(() => {
  for (const node of document.querySelectorAll('[data-ago]')) node.textContent = formatAgo(Number(node.dataset.ago));
}, 5000);

export function ago(ms, prefix = '') {
  const node = el('span', { class: 'ago', dataset: { ago: String(ms || '') }, title: ms ? new Date(ms).toLocaleString() : '' });
  node.textContent = formatAgo(ms);
  return prefix ? el('span', {}, prefix, node) : node;
}

function hue(text) {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

export function avatar(name) {
  return el('span', { class: 'avatar', style: `--hue: ${hue(name)}`, 'aria-hidden': 'true' }, name.trim().charAt(0).toUpperCase());
}

const STATUS_TEXT = {
  connecting: 'Connecting…',
  open: 'Live',
  reconnecting: 'Reconnecting…',
  unauthorized: 'Sign-in refused',
};

/*
 * Connects to Herald as the stored demo user (if any), fills the page header
 * (navigation, connection status, sign-in menu) and keeps the user's record
 * current with users:upsert. Resolves to the app:
 *   app.db          the HeraldClient
 *   app.user        {name, sub, userId} or null
 *   app.onUser(cb)  cb(user) now and whenever someone signs in or out
 *   app.signIn(name), app.signOut(), app.openSignIn()
 */
export async function startApp({ page }) {
  const header = document.querySelector('.topbar');
  const conn = header.querySelector('.conn');
  const account = header.querySelector('.account');
  for (const a of header.querySelectorAll('nav a')) if (a.dataset.page === page) a.setAttribute('aria-current', 'page');

  const setStatus = (state) => {
    conn.dataset.state = state;
    conn.textContent = STATUS_TEXT[state] || state;
    conn.title = state === 'open' ? 'Connected: updates arrive as they are committed' : '';
  };
  setStatus('connecting');

  const listeners = [];
  let refreshTimer = null;
  let tokenExp = 0;
  const app = { db: null, user: null };

  const stored = localStorage.getItem(USER_KEY);
  let first = null;
  if (stored) {
    try {
      first = await mintDemoToken(stored);
    } catch (e) {
      localStorage.removeItem(USER_KEY);
    }
  }
  app.db = connect(wsUrl(), {
    token: first ? first.token : null,
    onStatus: (state, detail) => {
      setStatus(state);
      if (state === 'unauthorized') toast(`Herald refused the demo token: ${describeError(detail).message}`, 'error');
      /* After a sleep the token may have run out: mint a fresh one. */
      if (state === 'open' && app.user && Date.now() / 1000 > tokenExp - 300) refresh();
      if (state === 'open') ensureUserRecord();
    },
  });

  const notify = () => {
    renderAccount();
    for (const cb of listeners) cb(app.user);
  };

  async function upsert() {
    const { value } = await app.db.mutation('users:upsert', {});
    return value;
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!app.user) return;
    const inMs = Math.max(10, (tokenExp - 300) * 1000 - Date.now());
    refreshTimer = setTimeout(refresh, Math.min(inMs, (TOKEN_LIFETIME_SECONDS - 300) * 1000));
  }

  async function refresh() {
    if (!app.user) return;
    const { token, exp } = await mintDemoToken(app.user.name);
    tokenExp = exp;
    scheduleRefresh();
    try {
      await app.db.setAuth(token);
    } catch (e) {
      toast(`Could not renew the sign-in: ${describeError(e).message}`, 'error');
    }
  }

  /* The user is signed in from now on; their record (users:upsert) follows. */
  function becomeUser(name, exp) {
    app.user = { name, sub: `demo|${userSlug(name)}`, userId: null };
    tokenExp = exp;
    scheduleRefresh();
    notify();
    return ensureUserRecord();
  }

  async function ensureUserRecord() {
    const user = app.user;
    if (!user || user.userId || user.upserting) return;
    user.upserting = true;
    try {
      const userId = await upsert();
      if (app.user === user) {
        user.userId = userId;
        notify();
      }
    } catch (e) {
      /* Lost connection: tried again when it is back (onStatus 'open'). */
      if (e.code !== 'Disconnected') toast(`Sign-in failed: ${describeError(e).message}`, 'error');
    } finally {
      user.upserting = false;
    }
  }

  app.signIn = async (name) => {
    name = name.trim();
    const { token, exp } = await mintDemoToken(name);
    await app.db.setAuth(token);
    localStorage.setItem(USER_KEY, name);
    await becomeUser(name, exp);
  };

  app.signOut = async () => {
    localStorage.removeItem(USER_KEY);
    clearTimeout(refreshTimer);
    app.user = null;
    await app.db.setAuth(null).catch(() => {});
    notify();
  };

  app.onUser = (cb) => {
    listeners.push(cb);
    cb(app.user);
  };

  const menu = el('div', { class: 'signin-menu', id: 'signin-menu', hidden: true, role: 'dialog', 'aria-label': 'Demo sign-in' });
  app.openSignIn = () => {
    menu.hidden = false;
    const firstButton = menu.querySelector('button');
    if (firstButton) firstButton.focus();
  };
  document.addEventListener('click', (e) => {
    if (!menu.hidden && !menu.contains(e.target) && !e.target.closest('[data-open-signin]')) menu.hidden = true;
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') menu.hidden = true;
  });

  function renderMenu() {
    const input = el('input', { type: 'text', name: 'name', placeholder: 'Any other name', maxlength: '40', autocomplete: 'off', 'aria-label': 'Another name' });
    const choose = (name) => async () => {
      menu.hidden = true;
      try {
        await app.signIn(name);
      } catch (e) {
        toast(`Sign-in failed: ${describeError(e).message}`, 'error');
      }
    };
    menu.replaceChildren(
      el('p', { class: 'signin-title' }, 'Demo sign-in'),
      el('div', { class: 'signin-users' },
        DEMO_USERS.map((n) => el('button', { type: 'button', class: 'user-choice', dataset: { user: n.toLowerCase() }, onclick: choose(n) }, avatar(n), n))),
      el('form', { class: 'signin-other', onsubmit: (e) => { e.preventDefault(); if (userSlug(input.value)) choose(input.value)(); } },
        input, el('button', { type: 'submit', class: 'btn btn-small' }, 'Sign in')),
      el('p', { class: 'signin-warning' },
        'Demo only: this page signs its own token with a secret that everyone can read. A real app never ships a signing secret to browsers.'),
    );
  }
  renderMenu();

  function renderAccount() {
    if (app.user) {
      account.replaceChildren(
        el('span', { class: 'who', title: app.user.sub }, avatar(app.user.name), el('span', { class: 'who-name' }, app.user.name)),
        el('button', { type: 'button', class: 'btn btn-ghost btn-small', id: 'sign-out', onclick: () => app.signOut() }, 'Sign out'),
      );
    } else {
      account.replaceChildren(
        el('button', { type: 'button', class: 'btn btn-small', id: 'sign-in', dataset: { openSignin: '' }, onclick: () => { menu.hidden = !menu.hidden; } }, 'Sign in'),
        menu,
      );
    }
  }

  if (first) becomeUser(stored, first.exp);
  else notify();
  return app;
}
