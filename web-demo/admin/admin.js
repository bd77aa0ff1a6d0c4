/*
 * Herald's web admin console (/admin).
 *
 * Two connections to /ws, both signed in with the admin key:
 *  - AdminSocket (below), a small raw WebSocket helper for the console's own
 *    messages (admin tables/schema/functions/stats, the commit tail) and for
 *    one-shot queries and mutations;
 *  - the JavaScript client (/herald.js), which keeps watched results (the
 *    query box's, the open document, the Scheduled view) current by applying
 *    the diffs the server sends.
 * Both reconnect with backoff and sign in again by themselves.
 *
 * The key lives in sessionStorage (this tab only), never in a URL, never in
 * a log. Everything the server sends is put into the page as text, never as
 * HTML.
 */
import { connect, HeraldError } from '/herald.js';

const KEY_STORE = 'herald.adminKey';
const WS_URL = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const TAIL_MAX = 500;
const $ = (id) => document.getElementById(id);

/* ------------------------------------------------------------------------ */
/* The raw socket for the admin messages.                                   */

class AdminSocket {
  constructor(url, key, { onStatus, onReady, onCommit, onAuthLost, onTailGap }) {
    this.url = url;
    this.key = key;
    this.onStatus = onStatus;
    this.onReady = onReady;
    this.onCommit = onCommit;
    this.onAuthLost = onAuthLost;
    this.onTailGap = onTailGap;
    this.tails = 0; /* tails started: from the second on, commits may have been missed */
    this.nextId = 1;
    this.pending = new Map(); /* id -> {resolve, reject} */
    this.tailId = null;
    this.ready = false; /* open and signed in */
    this.closed = false;
    this.everReady = false;
    this.backoff = 250;
    this.ws = null;
  }

  /* Connects and signs in; resolves once the key was accepted, rejects (HeraldError) if not. */
  start() {
    return new Promise((resolve, reject) => {
      this.first = { resolve, reject };
      this._connect();
    });
  }

  /* Sends one request; resolves with the answer (result or ack), rejects with a HeraldError. */
  request(message) {
    if (!this.ready) return Promise.reject(new HeraldError('Disconnected', 'not connected to the server'));
    return this._send(message);
  }

  /* Asks for the commit tail (again after every reconnect). */
  tail() {
    this.wantTail = true;
    if (this.ready) this._startTail();
  }

  close() {
    this.closed = true;
    this.ready = false;
    if (this.ws) this.ws.close();
    this._failPending('Closed', 'signed out');
  }

  _send(message, id = `a${this.nextId++}`) {
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      try {
        this.ws.send(JSON.stringify({ ...message, id }));
      } catch (e) {
        this.pending.delete(id);
        reject(new HeraldError('Disconnected', String(e.message || e)));
      }
    });
  }

  _startTail() {
    const again = this.tails++ > 0;
    const id = `tail${this.nextId++}`;
    this.tailId = id; /* its commit frames carry the id of the request */
    this._send({ type: 'tail' }, id).then(
      (ack) => {
        if (again) this.onTailGap(ack.version);
      },
      (e) => {
        if (e.code !== 'Disconnected' && e.code !== 'Closed') this.onCommit(null, e);
      },
    );
  }

  _failPending(code, message) {
    for (const p of this.pending.values()) p.reject(new HeraldError(code, message));
    this.pending.clear();
  }

  _connect() {
    if (this.closed) return;
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this._lost(String(e.message || e));
      return;
    }
    this.ws = ws;
    ws.onopen = async () => {
      try {
        await this._send({ type: 'auth', token: this.key });
      } catch (e) {
        if (e.code === 'Unauthorized') {
          this.closed = true;
          ws.close();
          if (this.first) {
            this.first.reject(e);
            this.first = null;
          } else {
            this.onAuthLost(e);
          }
        }
        return;
      }
      this.ready = true;
      this.backoff = 250;
      this.onStatus('open');
      if (this.wantTail) this._startTail();
      if (this.first) {
        this.first.resolve();
        this.first = null;
      } else {
        this.onReady();
      }
    };
    ws.onmessage = (event) => {
      let m;
      try {
        m = JSON.parse(event.data);
      } catch {
        return;
      }
      if (m.type === 'commit') {
        if (m.id === this.tailId) this.onCommit(m);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'error') p.reject(new HeraldError(m.code, m.message, m.data));
      else p.resolve(m);
    };
    ws.onclose = (event) => {
      this.ws = null;
      this.ready = false;
      this._failPending('Disconnected', event.reason || 'connection lost');
      this._lost(event.reason || 'connection lost');
    };
    ws.onerror = () => {};
  }

  _lost(reason) {
    if (this.closed) return;
    if (this.first) {
      /* Never signed in: say so instead of retrying behind the sign-in form. */
      this.closed = true;
      this.first.reject(new HeraldError('Disconnected', `cannot reach the server (${reason})`));
      this.first = null;
      return;
    }
    this.onStatus('reconnecting');
    setTimeout(() => this._connect(), this.backoff);
    this.backoff = Math.min(this.backoff * 2, 10000);
  }
}

/* ------------------------------------------------------------------------ */
/* Formatting.                                                              */

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/* Pretty-printed, highlighted JSON, built as DOM nodes (never HTML). */
function renderJSON(target, value) {
  target.replaceChildren();
  const text = JSON.stringify(value, null, 2);
  if (text === undefined) {
    target.textContent = 'undefined';
    return;
  }
  if (text.length > 300000) {
    target.textContent = text; /* too large to highlight quickly */
    return;
  }
  const frag = document.createDocumentFragment();
  const span = (cls, t) => {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = t;
    return s;
  };
  const walk = (v, indent) => {
    if (v === null) frag.append(span('j-null', 'null'));
    else if (typeof v === 'string') frag.append(span('j-str', JSON.stringify(v)));
    else if (typeof v === 'number') frag.append(span('j-num', JSON.stringify(v)));
    else if (typeof v === 'boolean') frag.append(span('j-bool', String(v)));
    else if (Array.isArray(v)) {
      if (v.length === 0) return void frag.append('[]');
      frag.append('[\n');
      v.forEach((item, i) => {
        frag.append(indent + '  ');
        walk(item, indent + '  ');
        frag.append(i < v.length - 1 ? ',\n' : '\n');
      });
      frag.append(indent + ']');
    } else {
      const keys = Object.keys(v);
      if (keys.length === 0) return void frag.append('{}');
      frag.append('{\n');
      keys.forEach((k, i) => {
        frag.append(indent + '  ', span('j-key', JSON.stringify(k)), ': ');
        walk(v[k], indent + '  ');
        frag.append(i < keys.length - 1 ? ',\n' : '\n');
      });
      frag.append(indent + '}');
    }
  };
  walk(value, '');
  target.append(frag);
}

function decodeInt64(b64) {
  try {
    const bin = atob(b64);
    if (bin.length !== 8) return null;
    let n = 0n;
    for (let i = 7; i >= 0; i--) n = (n << 8n) | BigInt(bin.charCodeAt(i));
    return BigInt.asIntN(64, n);
  } catch {
    return null;
  }
}

/* One cell of the documents table: {text, cls}. */
function cellOf(v) {
  if (v === undefined) return { text: '—', cls: 'none' };
  if (v === null) return { text: 'null', cls: '' };
  if (typeof v === 'number') return { text: String(v), cls: 'num' };
  if (typeof v === 'string') return { text: v, cls: 'str' };
  if (typeof v === 'boolean') return { text: String(v), cls: '' };
  if (!Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1 && keys[0] === '$integer') {
      const n = decodeInt64(v.$integer);
      if (n !== null) return { text: `${n}n`, cls: 'num' };
    }
    if (keys.length === 1 && keys[0] === '$bytes') return { text: `bytes(${Math.floor((v.$bytes.length * 3) / 4)})`, cls: '' };
  }
  const s = JSON.stringify(v);
  return { text: s.length > 120 ? s.slice(0, 117) + '…' : s, cls: '' };
}

function fmtBytes(n) {
  if (typeof n !== 'number' || !isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtDuration(s) {
  if (typeof s !== 'number' || !isFinite(s)) return '–';
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

const fmtNum = (n) => (typeof n === 'number' && isFinite(n) ? n.toLocaleString('en-US') : '–');
const fmtMs = (n) => (typeof n === 'number' && isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : '–');
const clock = () => new Date().toLocaleTimeString('en-GB');

function showError(box, e) {
  box.replaceChildren(el('span', { class: 'code', text: e.code || 'Error' }), document.createTextNode(e.message || String(e)));
  if (e.data !== undefined && e.data !== null) box.append(el('div', { class: 'mono small', text: JSON.stringify(e.data) }));
  box.hidden = false;
}

/* ------------------------------------------------------------------------ */
/* State.                                                                   */

let admin = null; /* AdminSocket */
let db = null; /* HeraldClient, for live results */
let statsTimer = null;
let adminMissing = false;

const state = {
  tables: [],
  functions: new Map(), /* path -> {kind, internal} */
  version: 0,
  browse: { table: null, index: 'by_creation_time', order: 'asc', size: 25, cursors: [null], page: 0, view: 'table', last: null, seq: 0 },
  tail: { count: 0, paused: false, held: [] },
  watch: null, /* {stop, updates} */
  cps: [],
  doc: null, /* {stop} */
  sched: null, /* {stops, active, finished, errors, seen, timer}: the Scheduled view's subscriptions */
};

function setVersion(v) {
  if (typeof v === 'number' && v > state.version) {
    state.version = v;
    $('top-version').textContent = String(v);
  }
}

function setConn(status) {
  const conn = $('conn');
  conn.dataset.state = status;
  $('conn-text').textContent = status === 'open' ? 'connected' : status === 'reconnecting' ? 'reconnecting…' : status;
  conn.title = $('conn-text').textContent;
}

function banner(text) {
  $('banner').textContent = text || '';
  $('banner').hidden = !text;
}

/* ------------------------------------------------------------------------ */
/* Sign in and out.                                                         */

let retryTimer = null;
let retryDelay = 1000;

/* fromStorage: the key this tab kept; if the server cannot be reached, try again later. */
async function signIn(key, fromStorage = false) {
  clearTimeout(retryTimer);
  const button = $('signin-button');
  const errorText = $('signin-error');
  button.disabled = true;
  button.textContent = 'Signing in…';
  errorText.hidden = true;
  const sock = new AdminSocket(WS_URL, key, {
    onStatus: setConn,
    onReady: reloadAll,
    onCommit: onCommit,
    onAuthLost: () => signOut('the key is not valid'),
    onTailGap: tailGap,
  });
  let failure = null;
  let refused = false;
  try {
    await sock.start();
    /* A token the server accepts is not necessarily the admin key: ask for an admin answer. */
    try {
      await sock.request({ type: 'admin', op: 'tables' });
      adminMissing = false;
    } catch (e) {
      if (e.code === 'Unauthorized') throw e;
      adminMissing = e.code === 'InvalidArgument';
    }
  } catch (e) {
    refused = e.code === 'Unauthorized';
    failure = refused ? 'the key is not valid' : e.message || String(e);
  }
  button.disabled = false;
  button.textContent = 'Sign in';
  if (failure) {
    sock.close();
    if (fromStorage && !refused) {
      showSignIn(`${failure}; trying again…`);
      retryTimer = setTimeout(() => signIn(key, true), retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
      return;
    }
    sessionStorage.removeItem(KEY_STORE);
    showSignIn(failure);
    return;
  }
  retryDelay = 1000;
  sessionStorage.setItem(KEY_STORE, key);
  $('key').value = '';
  admin = sock;
  db = connect(WS_URL, {
    token: key,
    onStatus: (status) => {
      if (status === 'unauthorized') signOut('the key is not valid');
    },
  });
  $('signin').hidden = true;
  $('app').hidden = false;
  $('host').textContent = location.host;
  setConn('open');
  banner(adminMissing ? 'This server does not answer the admin console\u2019s messages (tables, schema, stats, tail): browsing, queries and watches still work through raw queries.' : '');
  admin.tail();
  if (!$('tab-scheduled').hidden) startScheduled();
  reloadAll();
  statsTimer = setInterval(pollStats, 1000);
  pollStats();
}

function showSignIn(message) {
  $('app').hidden = true;
  $('signin').hidden = false;
  const errorText = $('signin-error');
  errorText.textContent = message || '';
  errorText.hidden = !message;
  $('key').focus();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  clearInterval(statsTimer);
  stopWatch();
  stopScheduled();
  closeDoc();
  if (admin) admin.close();
  if (db) db.close();
  admin = db = null;
  Object.assign(state, { tables: [], functions: new Map(), version: 0, cps: [] });
  Object.assign(state.browse, { table: null, cursors: [null], page: 0, last: null });
  Object.assign(state.tail, { count: 0, paused: false, held: [] });
  $('tail').replaceChildren();
  $('tail-empty').hidden = false;
  $('tail-count').textContent = '0';
  $('b-docs').replaceChildren();
  $('q-result').hidden = true;
  $('q-status').hidden = true;
  $('q-error').hidden = true;
  $('top-version').textContent = '–';
  showSignIn(message);
}

/* ------------------------------------------------------------------------ */
/* Tables, functions, schema.                                               */

function reloadAll() {
  loadTables();
  loadFunctions();
  loadSchema();
  if (state.browse.table) runBrowse();
}

let tablesTimer = null;
function loadTablesSoon() {
  clearTimeout(tablesTimer);
  tablesTimer = setTimeout(loadTables, 250);
}

async function loadTables() {
  if (!admin || adminMissing) return;
  try {
    const m = await admin.request({ type: 'admin', op: 'tables' });
    setVersion(m.version);
    state.tables = Array.isArray(m.value) ? m.value : [];
    renderTables();
  } catch (e) {
    if (e.code !== 'Disconnected' && e.code !== 'Closed') banner(`Tables: ${e.code}: ${e.message}`);
  }
}

function renderTables() {
  const list = $('tables');
  list.replaceChildren(
    ...state.tables.map((t) => {
      const indexes = (t.indexes || []).filter((i) => i.name !== 'by_id' && i.name !== 'by_creation_time');
      return el(
        'li',
        { 'data-table': t.name },
        el(
          'button',
          { type: 'button', class: t.name === state.browse.table ? 'on' : '', onclick: () => selectTable(t.name) },
          el('span', { class: 'tname', text: t.name }),
          el('span', { class: 'tcount', text: fmtNum(t.count) }),
          el('span', { class: 'tidx', text: indexes.length ? indexes.map((i) => i.name).join(' · ') : 'no indexes of its own' }),
        ),
      );
    }),
  );
  $('tables-empty').hidden = state.tables.length > 0;
  const select = $('b-table');
  const current = state.browse.table;
  select.replaceChildren(
    ...(current ? [] : [el('option', { value: '', text: 'choose…' })]),
    ...state.tables.map((t) => el('option', { value: t.name, text: `${t.name} (${fmtNum(t.count)})`, selected: t.name === current })),
  );
  if (current) renderIndexSelect();
  renderBrowseInfo();
}

function tableInfo(name) {
  return state.tables.find((t) => t.name === name);
}

/* An index's own fields: every index ends with _creationTime, which says nothing. */
function indexFields(i) {
  const f = i.fields || [];
  return f.length > 1 && f[f.length - 1] === '_creationTime' ? f.slice(0, -1) : f;
}

function renderIndexSelect() {
  const t = tableInfo(state.browse.table);
  const indexes = t && t.indexes && t.indexes.length ? t.indexes : [{ name: 'by_creation_time', fields: ['_creationTime'] }, { name: 'by_id', fields: ['_id'] }];
  $('b-index').replaceChildren(
    ...indexes.map((i) =>
      el('option', { value: i.name, text: `${i.name} (${indexFields(i).join(', ')})`, selected: i.name === state.browse.index }),
    ),
  );
}

async function loadFunctions() {
  if (!admin || adminMissing) return;
  try {
    const m = await admin.request({ type: 'admin', op: 'functions' });
    state.functions = new Map((m.value || []).map((f) => [f.path, f]));
    renderFunctions();
  } catch (e) {
    if (e.code !== 'Disconnected' && e.code !== 'Closed') banner(`Functions: ${e.code}: ${e.message}`);
  }
}

function renderFunctions() {
  const fns = [...state.functions.values()].sort((a, b) => a.path.localeCompare(b.path));
  $('functions').replaceChildren(
    ...fns.map((f) =>
      el(
        'li',
        {},
        el('span', { class: `kind ${f.kind}`, text: f.kind === 'mutation' ? 'mut' : 'query' }),
        el('button', { type: 'button', title: `${f.path} (${f.kind}${f.internal ? ', internal' : ''})`, text: f.path, onclick: () => insertFunction(f.path) }),
        f.internal ? el('span', { class: 'kind internal', text: 'internal' }) : null,
      ),
    ),
  );
  $('functions-empty').hidden = fns.length > 0;
  $('q-pick').replaceChildren(
    el('option', { value: '', text: 'Insert a function…' }),
    ...fns.map((f) => el('option', { value: f.path, text: `${f.path} · ${f.kind}` })),
  );
}

function insertFunction(path) {
  $('q').value = `${path} {}`;
  $('q').focus();
  $('q').setSelectionRange(path.length + 2, path.length + 2);
}

async function loadSchema() {
  if (!admin || adminMissing) return;
  try {
    const m = await admin.request({ type: 'admin', op: 'schema' });
    $('schema-error').hidden = true;
    renderJSON($('schema'), m.value);
  } catch (e) {
    if (e.code !== 'Disconnected' && e.code !== 'Closed') showError($('schema-error'), e);
  }
}

/* ------------------------------------------------------------------------ */
/* Browsing a table page by page through an index.                          */

function selectTable(name) {
  const b = state.browse;
  const t = tableInfo(name);
  b.table = name || null;
  if (!t || !(t.indexes || []).some((i) => i.name === b.index)) b.index = 'by_creation_time';
  b.cursors = [null];
  b.page = 0;
  b.last = null;
  selectTab('browse');
  renderTables();
  if (b.table) runBrowse();
}

function restartBrowse() {
  state.browse.cursors = [null];
  state.browse.page = 0;
  state.browse.last = null;
  runBrowse();
}

async function runBrowse() {
  const b = state.browse;
  if (!admin || !b.table) return;
  const seq = ++b.seq;
  const query = { table: b.table, index: b.index, order: b.order, paginate: { numItems: b.size, cursor: b.cursors[b.page] } };
  try {
    const m = await admin.request({ type: 'query', query });
    if (seq !== b.seq) return;
    setVersion(m.version);
    b.last = m.value;
    $('b-error').hidden = true;
    renderDocs();
  } catch (e) {
    if (seq !== b.seq) return;
    b.last = null;
    $('b-docs').replaceChildren();
    showError($('b-error'), e);
    renderBrowseInfo();
  }
}

function renderDocs() {
  const b = state.browse;
  const box = $('b-docs');
  const page = (b.last && b.last.page) || [];
  if (page.length === 0) {
    box.replaceChildren(el('div', { class: 'empty', text: b.page === 0 ? 'This table is empty.' : 'No more documents.' }));
    renderBrowseInfo();
    return;
  }
  if (b.view === 'json') {
    box.replaceChildren(
      ...page.map((doc) => {
        const pre = el('pre', { class: 'json' });
        renderJSON(pre, doc);
        const hint = Object.entries(doc).find(([k, v]) => !k.startsWith('_') && typeof v === 'string');
        return el(
          'details',
          { class: 'jsondoc', open: true, 'data-id': doc._id },
          el('summary', {}, String(doc._id), hint ? el('span', { class: 'muted', text: `  ${hint[0]}: ${hint[1]}` }) : null),
          pre,
        );
      }),
    );
  } else {
    const t = tableInfo(b.table);
    const ix = t && (t.indexes || []).find((i) => i.name === b.index);
    const keyFields = ix ? (ix.fields || []).filter((f) => !f.startsWith('_') && !f.includes('.')) : [];
    const cols = ['_id', ...keyFields];
    for (const doc of page) for (const k of Object.keys(doc)) if (!cols.includes(k) && k !== '_creationTime') cols.push(k);
    cols.push('_creationTime');
    const head = el('tr', {}, ...cols.map((c) => el('th', { class: keyFields.includes(c) ? 'key' : '', text: c, title: keyFields.includes(c) ? `field of ${b.index}` : undefined })));
    const rows = page.map((doc) =>
      el(
        'tr',
        { 'data-id': doc._id, title: 'Open the document', onclick: () => openDoc(b.table, doc._id) },
        ...cols.map((c) => {
          const { text, cls } = cellOf(doc[c]);
          return el('td', { class: c === '_id' ? 'id' : cls, text, title: text.length > 30 ? text : undefined });
        }),
      ),
    );
    box.replaceChildren(el('table', {}, el('thead', {}, head), el('tbody', {}, ...rows)));
  }
  renderBrowseInfo();
}

function renderBrowseInfo() {
  const b = state.browse;
  const info = $('b-info');
  $('b-prev').disabled = !b.table || b.page === 0;
  $('b-next').disabled = !b.last || b.last.isDone || !(b.last.page || []).length;
  if (!b.table) {
    info.textContent = state.tables.length ? 'Pick a table.' : '';
    return;
  }
  const n = b.last && b.last.page ? b.last.page.length : 0;
  const t = tableInfo(b.table);
  const count = t ? ` of ${fmtNum(t.count)}` : '';
  const first = b.page * b.size + 1; /* exact while pages are full, which they are until the last one */
  info.textContent = n ? `Page ${b.page + 1} · documents ${first}–${first + n - 1}${count}${b.last.isDone ? ' · end' : ''}` : `Page ${b.page + 1}`;
  info.dataset.page = String(b.page + 1);
}

/* ------------------------------------------------------------------------ */
/* The query box: run once, or watch live.                                  */

function parseInput(text) {
  const s = text.trim();
  if (!s) throw new HeraldError('InvalidInput', 'type a function call (module:name {args}) or a raw query ({...})');
  if (s.startsWith('{') || s.startsWith('[')) {
    let v;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new HeraldError('InvalidJSON', e.message);
    }
    return Array.isArray(v) ? { kind: 'ops', ops: v, label: `${v.length} raw operation${v.length === 1 ? '' : 's'}` } : { kind: 'raw', query: v, label: `raw query on ${v.table}` };
  }
  const m = /^([A-Za-z0-9_./-]+:[A-Za-z0-9_]+)\s*([\s\S]*)$/.exec(s);
  if (!m) throw new HeraldError('InvalidInput', 'expected module:name followed by its arguments as a JSON object, or a raw query');
  let args = {};
  if (m[2].trim()) {
    try {
      args = JSON.parse(m[2]);
    } catch (e) {
      throw new HeraldError('InvalidJSON', `arguments: ${e.message}`);
    }
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new HeraldError('InvalidInput', 'the arguments must be a JSON object');
  }
  const fn = state.functions.get(m[1].replace('.js:', ':'));
  return { kind: fn && fn.kind === 'mutation' ? 'mutation' : 'query', path: m[1], args, label: m[1] };
}

function setStatus(parts, live) {
  const status = $('q-status');
  const text = $('q-status-text');
  text.replaceChildren(...parts.map((p) => (typeof p === 'string' ? document.createTextNode(p) : p)));
  status.dataset.live = live ? 'true' : 'false';
  status.hidden = false;
  if (live) {
    status.classList.remove('flash');
    void status.offsetWidth;
    status.classList.add('flash');
  }
}

function showResult(value, version) {
  const pre = $('q-result');
  renderJSON(pre, value);
  pre.dataset.version = String(version ?? '');
  pre.hidden = false;
  pre.classList.remove('flash');
  void pre.offsetWidth;
  pre.classList.add('flash');
}

async function run() {
  stopWatch();
  $('q-error').hidden = true;
  let p;
  try {
    p = parseInput($('q').value);
  } catch (e) {
    return showQError(e);
  }
  const t0 = performance.now();
  setStatus([p.kind === 'mutation' || p.kind === 'ops' ? 'committing ' : 'running ', el('b', { text: p.label }), '…'], false);
  try {
    let m;
    if (p.kind === 'raw') m = await admin.request({ type: 'query', query: p.query });
    else if (p.kind === 'ops') m = await admin.request({ type: 'mutate', ops: p.ops });
    else if (p.kind === 'mutation') m = await admin.request({ type: 'mutate', path: p.path, args: p.args });
    else m = await admin.request({ type: 'query', path: p.path, args: p.args });
    setVersion(m.version);
    const ms = Math.round(performance.now() - t0);
    const what = p.kind === 'mutation' || p.kind === 'ops' ? 'committed' : 'one shot';
    setStatus([el('b', { text: p.label }), ` · ${what} at version `, el('b', { text: String(m.version ?? '–') }), ` · ${ms} ms · ${clock()}`], false);
    showResult(m.value === undefined ? null : m.value, m.version);
  } catch (e) {
    showQError(e);
  }
}

function showQError(e) {
  $('q-status').hidden = true;
  $('q-result').hidden = true;
  showError($('q-error'), e);
}

function watch() {
  stopWatch();
  $('q-error').hidden = true;
  let p;
  try {
    p = parseInput($('q').value);
  } catch (e) {
    return showQError(e);
  }
  if (p.kind === 'ops' || p.kind === 'mutation') {
    return showQError(new HeraldError('InvalidInput', `${p.label} ${p.kind === 'ops' ? 'are writes' : 'is a mutation'}: Run it once; Watch takes a query`));
  }
  const w = { updates: 0, label: p.label, stop: null };
  state.watch = w;
  setStatus(['subscribing to ', el('b', { text: p.label }), '…'], false);
  const onValue = (value, version) => {
    if (state.watch !== w) return;
    w.updates++;
    setVersion(version);
    $('q-error').hidden = true;
    setStatus(
      ['live · ', el('b', { text: p.label }), ' · version ', el('b', { text: String(version) }), ` · ${w.updates === 1 ? 'first result' : `updated ${w.updates - 1}×`} · ${clock()}`],
      true,
    );
    showResult(value, version);
  };
  const onError = (e) => {
    if (state.watch !== w) return;
    showError($('q-error'), e);
  };
  w.stop = p.kind === 'raw' ? db.subscribe(p.query, onValue, onError) : db.subscribe(p.path, p.args, onValue, onError);
  $('q-stop').hidden = false;
  $('q-watch').hidden = true;
}

function stopWatch() {
  if (state.watch) {
    state.watch.stop();
    state.watch = null;
    const status = $('q-status');
    if (!status.hidden) status.dataset.live = 'false';
    const text = $('q-status-text');
    if (text.firstChild && text.firstChild.nodeType === 3 && text.firstChild.textContent.startsWith('live')) {
      text.firstChild.textContent = 'stopped · ';
    }
  }
  $('q-stop').hidden = true;
  $('q-watch').hidden = false;
}

/* ------------------------------------------------------------------------ */
/* The commit tail.                                                         */

let browseTimer = null;
function onCommit(m, error) {
  if (error) {
    banner(`Live tail: ${error.code}: ${error.message}`);
    return;
  }
  setVersion(m.version);
  const changes = Array.isArray(m.changes) ? m.changes : [];
  state.tail.count++;
  $('tail-count').textContent = fmtNum(state.tail.count);
  if (state.tail.paused) state.tail.held.push(m);
  else addTailRows([m]);
  loadTablesSoon();
  if (state.browse.table && changes.some((c) => c.table === state.browse.table)) {
    clearTimeout(browseTimer);
    browseTimer = setTimeout(runBrowse, 150);
  }
}

/* After a reconnect: the commits made while the page was away are not replayed. */
function tailGap(version) {
  const row = el('tr', { class: 'gap', 'data-gap': version },
    el('td', { colSpan: 4, text: `reconnected at version ${version}: commits made while disconnected are not listed` }));
  if (state.tail.paused) state.tail.held.push({ gap: row });
  else {
    $('tail').prepend(row);
    $('tail-empty').hidden = true;
  }
}

function addTailRows(commits) {
  const body = $('tail');
  for (const m of commits) {
    if (m.gap) {
      body.prepend(m.gap);
      continue;
    }
    const changes = Array.isArray(m.changes) && m.changes.length ? m.changes : [{ table: '', op: '', doc: '' }];
    /* Newest first; the changes of one commit in their order. */
    const rows = changes.map((c) =>
      el(
        'tr',
        { class: 'new', 'data-version': m.version, 'data-table': c.table, 'data-op': c.op, 'data-doc': c.doc },
        el('td', { class: 'v', text: String(m.version) }),
        el('td', { text: c.table }),
        el('td', {}, el('span', { class: `op ${c.op}`, text: c.op })),
        el('td', { class: 'doc' }, c.doc ? el('button', { type: 'button', title: `Open ${c.doc}`, text: c.doc, onclick: () => openDoc(c.table, c.doc) }) : ''),
      ),
    );
    body.prepend(...rows);
  }
  while (body.rows.length > TAIL_MAX) body.deleteRow(-1);
  $('tail-empty').hidden = body.rows.length > 0;
}

/* ------------------------------------------------------------------------ */
/* One document, live.                                                      */

function openDoc(table, id) {
  closeDoc();
  const dialog = $('doc-dialog');
  $('doc-table').textContent = table;
  $('doc-id').textContent = id;
  $('doc-live').textContent = 'loading…';
  $('doc-error').hidden = true;
  $('doc-json').replaceChildren();
  const d = { stop: null, updates: 0 };
  state.doc = d;
  d.stop = db.subscribe(
    { table, get: id },
    (value, version) => {
      if (state.doc !== d) return;
      d.updates++;
      $('doc-error').hidden = true;
      $('doc-live').textContent = `live · version ${version}${d.updates > 1 ? ` · updated ${d.updates - 1}×` : ''}`;
      if (value === null) $('doc-json').textContent = 'No such document (it was deleted, or never existed).';
      else renderJSON($('doc-json'), value);
    },
    (e) => {
      if (state.doc !== d) return;
      $('doc-live').textContent = '';
      showError($('doc-error'), e);
    },
  );
  if (!dialog.open) dialog.showModal();
}

function closeDoc() {
  if (state.doc) {
    state.doc.stop();
    state.doc = null;
  }
  const dialog = $('doc-dialog');
  if (dialog.open) dialog.close();
}

/* ------------------------------------------------------------------------ */
/* Scheduled runs: ctx.scheduler's rows of _scheduled_functions, live.     */

/*
 * Four subscriptions through the table's index by_state_time (state.kind,
 * scheduledTime). The kinds sort "canceled" < "failed" < "inProgress" <
 * "pending" < "success", so the runs running and pending are one range,
 * running first, each due soonest first; the finished ones are one range
 * per kind, latest first, merged here by completion time.
 */
const SCHED_ACTIVE_MAX = 100;
const SCHED_FINISHED_MAX = 50;
const SCHED_FINISHED_KINDS = ['success', 'failed', 'canceled'];
const schedQuery = (range, more) => ({ table: '_scheduled_functions', index: 'by_state_time', range, ...more });

/* While the view is open: the page holds no subscriptions for it otherwise. */
function startScheduled() {
  stopScheduled();
  if (!db) return;
  const s = { stops: [], active: null, finished: {}, errors: {}, seen: null };
  state.sched = s;
  const follow = (name, query) =>
    s.stops.push(
      db.subscribe(
        query,
        (value) => {
          if (state.sched !== s) return;
          if (name === 'active') s.active = value;
          else s.finished[name] = value;
          delete s.errors[name];
          renderScheduled();
        },
        (e) => {
          if (state.sched !== s) return;
          s.errors[name] = e;
          renderScheduled();
        },
      ),
    );
  follow('active', schedQuery([{ gte: ['state.kind', 'inProgress'] }, { lte: ['state.kind', 'pending'] }], { take: SCHED_ACTIVE_MAX + 1 }));
  for (const kind of SCHED_FINISHED_KINDS) follow(kind, schedQuery([{ eq: ['state.kind', kind] }], { order: 'desc', take: SCHED_FINISHED_MAX }));
  s.timer = setInterval(refreshDue, 1000);
  renderScheduled(); /* nothing yet: no "no runs" before the server said so */
}

function stopScheduled() {
  const s = state.sched;
  if (!s) return;
  for (const stop of s.stops) stop();
  clearInterval(s.timer);
  state.sched = null;
  $('s-active').replaceChildren();
  $('s-finished').replaceChildren();
}

/* "14:03:07.120" today, "2025-11-24 14:03:07" another day. */
function fmtWhen(ms) {
  if (typeof ms !== 'number' || !isFinite(ms)) return '–';
  const d = new Date(ms);
  if (isNaN(d.getTime())) return String(ms); /* beyond the dates JavaScript has */
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === new Date().toDateString()) return `${time}.${pad(d.getMilliseconds(), 3)}`;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/* When a run is due, from now: "in 12 s", "in 5 min", "1.2 s late" (waiting for its turn). */
function fmtDue(ms) {
  const left = ms - Date.now();
  const s = Math.abs(left) / 1000;
  let amount;
  if (s < 10) amount = `${s.toFixed(1)} s`;
  else if (s < 60) amount = `${Math.round(s)} s`;
  else if (s < 3600) amount = `${Math.round(s / 60)} min`;
  else if (s < 86400) amount = `${(s / 3600).toFixed(1)} h`;
  else amount = `${(s / 86400).toFixed(1)} days`;
  return left >= 0 ? `in ${amount}` : `${amount} late`;
}

function refreshDue() {
  if ($('tab-scheduled').hidden) return;
  for (const span of document.querySelectorAll('#s-active .due')) span.textContent = fmtDue(Number(span.dataset.at));
}

function runRow(run, finished, fresh) {
  const kind = run.state && typeof run.state.kind === 'string' ? run.state.kind : '?';
  const label = kind === 'inProgress' ? 'running' : kind;
  const args = cellOf(run.args);
  const full = JSON.stringify(run.args);
  const when = finished ? run.completedTime : run.scheduledTime;
  const whenCell = el('td', { class: 'when', title: finished ? `scheduled for ${fmtWhen(run.scheduledTime)}` : undefined }, fmtWhen(when));
  if (!finished && kind === 'pending') whenCell.append(' ', el('span', { class: 'due', 'data-at': String(run.scheduledTime), text: fmtDue(run.scheduledTime) }));
  const rows = [
    el(
      'tr',
      { class: fresh ? 'new' : '', 'data-id': run._id, 'data-state': kind },
      el('td', {}, el('span', { class: `sstate ${kind}`, text: label })),
      el('td', { class: 'fname', text: run.name ?? '?' }),
      el('td', { class: 'args', text: args.text, title: full && full.length > 40 ? full : undefined }),
      whenCell,
      el('td', { class: 'doc' }, el('button', { type: 'button', title: `Open ${run._id}`, text: run._id, onclick: () => openDoc('_scheduled_functions', run._id) })),
    ),
  ];
  if (finished && run.state && run.state.error !== undefined) {
    rows.push(el('tr', { class: 'errrow', 'data-error-for': run._id }, el('td', { colSpan: 5, text: String(run.state.error) })));
  }
  return rows;
}

function renderScheduled() {
  const s = state.sched;
  if (!s) return;
  const errors = Object.entries(s.errors);
  if (errors.length) showError($('s-error'), errors[0][1]);
  else $('s-error').hidden = true;
  const all = s.active || [];
  const active = all.slice(0, SCHED_ACTIVE_MAX);
  const finished = SCHED_FINISHED_KINDS.flatMap((k) => s.finished[k] || [])
    .sort((a, b) => (b.completedTime ?? -Infinity) - (a.completedTime ?? -Infinity) || b._creationTime - a._creationTime)
    .slice(0, SCHED_FINISHED_MAX);
  /* Rows that are new, or have a new state, flash once (not on the first render). */
  const key = (r) => `${r._id}:${r.state && r.state.kind}`;
  const fresh = (r) => s.seen !== null && !s.seen.has(key(r));
  $('s-active').replaceChildren(...active.flatMap((r) => runRow(r, false, fresh(r))));
  $('s-finished').replaceChildren(...finished.flatMap((r) => runRow(r, true, fresh(r))));
  if (s.active !== null && SCHED_FINISHED_KINDS.every((k) => s.finished[k])) s.seen = new Set([...active, ...finished].map(key));
  const more = all.length > SCHED_ACTIVE_MAX;
  $('s-active-count').textContent = more ? `${SCHED_ACTIVE_MAX}+` : String(active.length);
  $('s-active-more').textContent = more ? `showing the first ${SCHED_ACTIVE_MAX}, due soonest` : '';
  $('s-active-more').hidden = !more;
  $('s-active-empty').hidden = s.active === null || active.length > 0;
  $('s-finished-count').textContent = String(finished.length);
  $('s-finished-empty').hidden = SCHED_FINISHED_KINDS.some((k) => !s.finished[k]) || finished.length > 0;
}

/* ------------------------------------------------------------------------ */
/* Stats, every second.                                                     */

let statsBusy = false;
async function pollStats() {
  if (!admin || !admin.ready || statsBusy || adminMissing) return;
  statsBusy = true;
  try {
    const m = await admin.request({ type: 'admin', op: 'stats' });
    renderStats(m.value || {});
  } catch (e) {
    if (e.code !== 'Disconnected' && e.code !== 'Closed') banner(`Stats: ${e.code}: ${e.message}`);
  } finally {
    statsBusy = false;
  }
}

function renderStats(s) {
  const count = (x) => (Array.isArray(x) ? x.length : x);
  $('st-connections').textContent = fmtNum(s.connections);
  $('st-subscriptions').textContent = fmtNum(s.subscriptions);
  $('st-instances').textContent = fmtNum(s.queryInstances);
  $('st-functions').textContent = fmtNum(count(s.functions));
  $('st-auth').textContent = fmtNum(count(s.authProviders));
  const cps = typeof s.commitsPerSecond === 'number' ? s.commitsPerSecond : 0;
  $('st-cps').textContent = cps >= 100 ? String(Math.round(cps)) : cps.toFixed(1);
  $('st-commits').textContent = fmtNum(s.commits);
  const ctp = s.commitToPush || {};
  const hasSamples = ctp.samples > 0;
  $('st-p50').textContent = hasSamples ? fmtMs(ctp.p50Ms) : '–';
  $('st-p99').textContent = hasSamples ? fmtMs(ctp.p99Ms) : '–';
  $('st-samples').textContent = fmtNum(ctp.samples ?? 0);
  const map = s.map || {};
  $('st-used').textContent = fmtBytes(map.usedBytes);
  $('st-size').textContent = fmtBytes(map.sizeBytes);
  $('st-max').textContent = fmtBytes(map.maxBytes);
  const pct = map.sizeBytes ? Math.min(100, (100 * map.usedBytes) / map.sizeBytes) : 0;
  $('st-pct').textContent = `${pct < 10 ? pct.toFixed(1) : Math.round(pct)}%`;
  $('st-bar').style.width = `${Math.max(pct, pct > 0 ? 1 : 0)}%`;
  $('st-version').textContent = fmtNum(s.version);
  $('st-uptime').textContent = fmtDuration(s.uptimeSeconds);
  setVersion(s.version);
  state.cps.push(cps);
  if (state.cps.length > 60) state.cps.shift();
  const peak = Math.max(1, ...state.cps);
  const step = 120 / 59;
  const start = 60 - state.cps.length;
  const points = state.cps.map((v, i) => `${((start + i) * step).toFixed(1)},${(31 - (28 * v) / peak).toFixed(1)}`);
  const spark = $('st-spark');
  spark.querySelector('polyline').setAttribute('points', points.join(' '));
  spark.querySelector('polygon').setAttribute('points', `${(start * step).toFixed(1)},31 ${points.join(' ')} 120,31`);
  $('stats').dataset.ready = 'true';
}

/* ------------------------------------------------------------------------ */
/* Wiring.                                                                  */

function selectTab(name) {
  for (const tab of document.querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
  for (const panel of document.querySelectorAll('.tabpanel')) panel.hidden = panel.id !== `tab-${name}`;
  if (name !== 'scheduled') stopScheduled();
  else if (!state.sched) startScheduled();
}

function setView(view) {
  state.browse.view = view;
  $('b-view-table').classList.toggle('on', view === 'table');
  $('b-view-json').classList.toggle('on', view === 'json');
  if (state.browse.last) renderDocs();
}

$('signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  clearTimeout(retryTimer);
  const key = $('key').value.trim();
  if (key) signIn(key);
});
$('signout').addEventListener('click', () => signOut(''));
$('tables-refresh').addEventListener('click', () => loadTables());
for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => selectTab(tab.dataset.tab));
$('b-table').addEventListener('change', (e) => selectTable(e.target.value));
$('b-index').addEventListener('change', (e) => {
  state.browse.index = e.target.value;
  restartBrowse();
});
$('b-order').addEventListener('change', (e) => {
  state.browse.order = e.target.value;
  restartBrowse();
});
$('b-size').addEventListener('change', (e) => {
  state.browse.size = Number(e.target.value);
  restartBrowse();
});
$('b-view-table').addEventListener('click', () => setView('table'));
$('b-view-json').addEventListener('click', () => setView('json'));
$('b-next').addEventListener('click', () => {
  const b = state.browse;
  if (!b.last || b.last.isDone) return;
  b.cursors.length = b.page + 1; /* the stack of cursors, one per page seen */
  b.cursors.push(b.last.continueCursor);
  b.page++;
  runBrowse();
});
$('b-prev').addEventListener('click', () => {
  const b = state.browse;
  if (b.page === 0) return;
  b.page--;
  runBrowse();
});
$('q-run').addEventListener('click', run);
$('q-watch').addEventListener('click', watch);
$('q-stop').addEventListener('click', stopWatch);
$('q').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    run();
  }
});
$('q-pick').addEventListener('change', (e) => {
  if (e.target.value) insertFunction(e.target.value);
  e.target.value = '';
});
$('tail-pause').addEventListener('click', () => {
  const t = state.tail;
  t.paused = !t.paused;
  $('tail-pause').textContent = t.paused ? `Resume` : 'Pause';
  if (!t.paused) {
    addTailRows(t.held);
    t.held = [];
  }
});
$('tail-clear').addEventListener('click', () => {
  $('tail').replaceChildren();
  state.tail.held = [];
  $('tail-empty').hidden = false;
});
$('doc-dialog').addEventListener('close', () => {
  if (state.doc) {
    state.doc.stop();
    state.doc = null;
  }
});

const saved = sessionStorage.getItem(KEY_STORE);
if (saved) {
  $('signin').hidden = true;
  signIn(saved, true);
} else {
  showSignIn('');
}
