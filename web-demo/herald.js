/*
 * Herald's JavaScript client: an ES module with no dependencies and no
 * build step, for browsers and Node (pass a WebSocket class in Node).
 *
 *   import { connect } from './herald.js';
 *   const db = connect('ws://localhost:3210/ws', { token: adminKey });
 *   const stop = db.subscribe({ table: 'videos', index: 'by_status',
 *                               range: [{ eq: ['status', 'Transcribing'] }] },
 *                             (value, version) => render(value));
 *   const { value } = await db.mutate([{ op: 'patch', id, value: { progressPercentage: 42 } }]);
 *
 * Apps call their server functions by path (docs/functions.md):
 *
 *   const db = connect('ws://localhost:3210/ws', { token: userJwt });
 *   db.subscribe('videos:getJobById', { jobId }, (video) => render(video));
 *   await db.mutation('videos:updateJobProgress', { twitchId, jobId, progressPercentage: 42 });
 *
 * It keeps every subscription's result current by applying the diffs the
 * server sends (herald-diff.js), reconnects by itself with backoff, and
 * re-subscribes after a reconnect, so callbacks see current results again.
 * It never calls a callback with a half-applied result.
 *
 * Paginated subscriptions are live pages (docs/queries.md, "Live pages"):
 * the server fixes a page's end on its first run and sends it as the
 * result's `journal`; the client keeps it and sends it back when it
 * re-subscribes after a reconnect, so the page keeps its end and no
 * document moves into no page (or into two) across the reconnect.
 */
import { applyDiff } from './herald-diff.js';

export class HeraldError extends Error {
  constructor(code, message, data) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    /* The data of a structured function error (herald.error{...}), like ConvexError's. */
    this.data = data;
  }
}

/* What a subscription or a query asks for: a function path and its arguments, or a raw query. */
function target(queryOrPath, args) {
  return typeof queryOrPath === 'string' ? { path: queryOrPath, args: args ?? {} } : { query: queryOrPath };
}

export function connect(url, options = {}) {
  return new HeraldClient(url, options);
}

export class HeraldClient {
  constructor(url, options = {}) {
    this.url = url;
    this.token = options.token ?? null;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.onStatus = options.onStatus ?? (() => {});
    this.nextId = 1;
    this.pending = new Map(); /* request id -> {resolve, reject, message} */
    this.subs = new Map(); /* subscription id -> {request, callback, onError, value, version, journal} */
    this.version = 0;
    this.closed = false;
    this.backoff = 250;
    this.ws = null;
    this.open = false;
    this._connect();
  }

  /*
   * Subscribes to a query function (`subscribe(path, args, callback, onError)`) or a raw
   * query (`subscribe(query, callback, onError)`); `callback(value, version)` runs now and
   * after every change.
   */
  subscribe(queryOrPath, ...rest) {
    const args = typeof queryOrPath === 'string' ? rest.shift() : undefined;
    const [callback, onError] = rest;
    const id = `s${this.nextId++}`;
    const request = target(queryOrPath, args);
    this.subs.set(id, { request, callback, onError, value: undefined, version: 0, journal: null });
    if (this.open) this._subscribe(id, this.subs.get(id));
    return () => {
      if (!this.subs.delete(id)) return;
      if (this.open) this._request({ type: 'unsub' }, id).catch(() => {});
    };
  }

  /* Runs a query function (`query(path, args)`) or a raw query once. Resolves to {value, version}. */
  query(queryOrPath, args) {
    return this._request({ type: 'query', ...target(queryOrPath, args) }).then((m) => ({
      value: m.value,
      version: m.version,
    }));
  }

  /* Calls a mutation function. Resolves after its updates arrived: {value, version}. */
  mutation(path, args = {}, options = {}) {
    const message = { type: 'mutate', path, args };
    if (options.idempotencyKey) message.idempotencyKey = options.idempotencyKey;
    return this._request(message).then((m) => ({ value: m.value, version: m.version }));
  }

  /* Runs an action (docs/functions.md, "Actions"). Resolves when it ended, with its return value. */
  action(path, args = {}) {
    return this._request({ type: 'action', path, args }).then((m) => m.value);
  }

  /* Commits operations as one transaction. Resolves after its updates arrived: {value, version}. */
  mutate(ops, options = {}) {
    const message = { type: 'mutate', ops };
    if (options.idempotencyKey) message.idempotencyKey = options.idempotencyKey;
    return this._request(message).then((m) => ({ value: m.value, version: m.version }));
  }

  /*
   * Changes the credentials (a JWT, the admin key, or null to sign out). The server re-runs
   * every subscription under the new identity and sends the new results in one update.
   * Resolves when the server accepted the token; rejects (Unauthorized) when it did not,
   * and the connection is then signed out.
   */
  setAuth(token) {
    this.token = token;
    if (!this.open) return Promise.resolve();
    return this._request({ type: 'auth', token: token ?? null }).then(() => undefined);
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
    for (const p of this.pending.values()) p.reject(new HeraldError('Closed', 'client closed'));
    this.pending.clear();
  }

  _connect() {
    if (this.closed) return;
    const ws = new this.WebSocket(this.url);
    this.ws = ws;
    ws.onopen = async () => {
      this.backoff = 250;
      this.open = true;
      try {
        if (this.token) await this._request({ type: 'auth', token: this.token });
      } catch (e) {
        this.onStatus('unauthorized', e);
      }
      /* Re-send what was waiting and re-subscribe everything: results come back whole. */
      for (const [id, p] of this.pending) if (!p.sent) this._sendPending(id, p);
      for (const [id, sub] of this.subs) this._subscribe(id, sub);
      this.onStatus('open');
    };
    ws.onmessage = (event) => this._receive(JSON.parse(typeof event.data === 'string' ? event.data : String(event.data)));
    ws.onclose = (event) => {
      this.open = false;
      this.ws = null;
      /* Requests in flight may or may not have been applied: mutations fail, the caller
       * decides (an idempotency key makes a retry safe). Queries are re-sent. */
      for (const [id, p] of this.pending) {
        if (p.message.type === 'mutate' || p.message.type === 'auth' || p.message.type === 'unsub') {
          p.reject(new HeraldError('Disconnected', event.reason || 'connection lost'));
          this.pending.delete(id);
        } else {
          p.sent = false;
        }
      }
      if (this.closed) return;
      this.onStatus('reconnecting', event.reason);
      setTimeout(() => this._connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 10000);
    };
    ws.onerror = () => {};
  }

  _send(message) {
    this.ws.send(JSON.stringify(message));
  }

  /* A page's journal goes back with it, so that it keeps the end its first run fixed. */
  _subscribe(id, sub) {
    const message = { type: 'sub', id, ...sub.request };
    if (sub.journal) message.journal = sub.journal;
    this._send(message);
  }

  _sendPending(id, p) {
    p.sent = true;
    this._send({ ...p.message, id });
  }

  _request(message, id = `r${this.nextId++}`) {
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, message, sent: false };
      this.pending.set(id, p);
      if (this.open) this._sendPending(id, p);
    });
  }

  _deliver(id, sub) {
    try {
      sub.callback(sub.value, sub.version);
    } catch (e) {
      setTimeout(() => { throw e; });
    }
  }

  _receive(m) {
    if (m.version && m.version > this.version) this.version = m.version;
    switch (m.type) {
      case 'result': {
        const sub = this.subs.get(m.id);
        if (sub) {
          sub.value = m.value;
          sub.version = m.version;
          if (typeof m.journal === 'string') sub.journal = m.journal;
          this._deliver(m.id, sub);
          return;
        }
        break;
      }
      case 'update':
        for (const change of m.changes) {
          const sub = this.subs.get(change.id);
          if (!sub) continue;
          sub.value = 'value' in change ? change.value : applyDiff(sub.value, change.diff);
          sub.version = m.version;
          this._deliver(change.id, sub);
        }
        return;
      case 'error': {
        const sub = this.subs.get(m.id);
        if (sub && !this.pending.has(m.id)) {
          if (sub.onError) sub.onError(new HeraldError(m.code, m.message, m.data));
          return;
        }
        break;
      }
      default:
        break;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type === 'error') p.reject(new HeraldError(m.code, m.message, m.data));
    else p.resolve(m);
  }
}
