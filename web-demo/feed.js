/*
 * The reels feed (examples/reels). Two views of feed.html:
 *
 * - without ?feed: the signed-in user's feeds, live (feeds:listByUser), and a
 *   form to create one (feeds:create); the worker then fills it with reels;
 * - with ?feed=ID: that feed's reels, page by page as the user scrolls
 *   (reels:listForFeed, one live subscription per page, the next page asked
 *   for when the end of the list comes near: IntersectionObserver). New reels
 *   arrive live in the last page. The reel in view is the "current" one; it is
 *   saved with feeds:updateProgress (throttled), and on reopening the page the
 *   feed scrolls back to the saved reel.
 */
import { startApp, el, toast, describeError, ago, DEMO_USERS, avatar } from './app.js';

const PAGE_SIZE = 5;
const MAX_PAGE = 200; /* reels:listForFeed's limit */
const SAVE_EVERY_MS = 1000;

const app = await startApp({ page: 'feed' });
const params = new URLSearchParams(location.search);
const feedId = params.get('feed');

function showState(box, kind, title, text, ...actions) {
  box.hidden = false;
  box.className = `state state-${kind}`;
  box.dataset.kind = kind;
  box.replaceChildren(el('p', { class: 'state-title' }, title), text ? el('p', {}, text) : '', ...actions);
}

function signInButtons() {
  return el('div', {}, DEMO_USERS.map((name) => el('button', {
    type: 'button', class: 'btn', dataset: { signinAs: name.toLowerCase() },
    onclick: () => app.signIn(name).catch((e) => toast(`Sign-in failed: ${describeError(e).message}`, 'error')),
  }, avatar(name), `Sign in as ${name}`)));
}

function statusBadge(status) {
  return el('span', { class: `badge badge-${status}` }, status);
}

if (feedId) feedView(feedId);
else feedsView();

/* --- the list of feeds ---------------------------------------------------- */

function feedsView() {
  document.getElementById('feeds-view').hidden = false;
  const list = document.getElementById('feeds');
  const state = document.getElementById('feeds-state');
  const form = document.getElementById('create-feed');
  const prompt = document.getElementById('feed-prompt');
  const button = document.getElementById('create-button');
  const hint = document.getElementById('create-hint');
  const hintText = hint.textContent;
  let feeds = null;
  let stop = null;
  let subscribedAs = null;

  const render = () => {
    const user = app.user;
    if (!user) {
      list.replaceChildren();
      showState(state, 'signed-out', 'Sign in to see your feeds',
        'This demo signs you in as a made-up user; two users never see each other’s feeds.', signInButtons());
      return;
    }
    if (feeds === null) {
      list.replaceChildren();
      showState(state, 'loading', 'Loading your feeds…');
      return;
    }
    if (feeds.length === 0) {
      list.replaceChildren();
      showState(state, 'empty', `No feeds yet, ${user.name}`, 'Create one above with a prompt: the worker fills it with reels while you watch.');
      return;
    }
    state.hidden = true;
    list.replaceChildren(...feeds.map((f) => el('li', {},
      el('a', { class: 'feed-card card', href: `feed.html?feed=${encodeURIComponent(f._id)}`, dataset: { feedId: f._id } },
        el('h2', {}, f.prompt),
        f.lastSeenIndex !== undefined ? el('p', {}, `Resumes at reel #${f.lastSeenIndex + 1}`) : el('p', {}, 'Not opened yet'),
        el('p', {}, ago(f.createdAt, 'Created ')),
        el('span', { class: 'feed-status' }, statusBadge(f.status))))));
  };

  app.onUser((user) => {
    const ready = Boolean(user && user.userId);
    button.disabled = Boolean(user) && !ready;
    hint.textContent = user ? hintText : 'Sign in (top right) to create feeds.';
    hint.classList.toggle('hint-warn', !user);
    /* One subscription per signed-in user record; signing out ends it. */
    const as = ready ? user.userId : null;
    if (as !== subscribedAs) {
      if (stop) stop();
      stop = null;
      feeds = null;
      subscribedAs = as;
      if (as) {
        stop = app.db.subscribe('feeds:listByUser', {}, (value) => {
          feeds = value || [];
          render();
        }, (err) => {
          const { code, message } = describeError(err);
          list.replaceChildren();
          showState(state, 'error', 'Could not load your feeds', `${message}${code ? ` (${code})` : ''}`);
        });
      }
    }
    render();
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!app.user) {
      app.openSignIn();
      toast('Sign in to create a feed', 'error');
      return;
    }
    const text = prompt.value.trim() || prompt.placeholder.replace(/^.*e\.g\. /, '');
    button.disabled = true;
    try {
      const { value: id } = await app.db.mutation('feeds:create', { prompt: text, tags: [] });
      location.href = `feed.html?feed=${encodeURIComponent(id)}`;
    } catch (err) {
      button.disabled = false;
      toast(`Could not create the feed: ${describeError(err).message}`, 'error');
    }
  });
}

/* --- one feed ------------------------------------------------------------- */

function feedView(id) {
  document.getElementById('feed-view').hidden = false;
  const head = document.getElementById('feed-head');
  const state = document.getElementById('feed-state');
  const reelsBox = document.getElementById('reels');
  const sentinel = document.getElementById('sentinel');
  const savedPill = document.getElementById('saved');
  const banner = document.getElementById('resume-banner');
  const fromStart = params.get('from') === 'start';

  let feed; /* undefined: not loaded yet; null: no such feed */
  let failed = false;
  let pages = []; /* {cursor, numItems, result, stop} */
  let fromPosition;
  let resumeTarget = null; /* the position to scroll back to, until done */
  let resumed = false;
  let current = null; /* the reel in view: {id, position} */
  const nodes = new Map(); /* reel id -> element */
  const visible = new Set(); /* reel elements the observer says intersect */
  let started = false;
  let initialRenderDone = false;
  let signedInAs;

  app.onUser((user) => {
    const sub = user ? user.sub : null;
    if (signedInAs !== undefined && sub !== signedInAs) {
      /* Another user (or nobody) now: start over as them. */
      location.reload();
      return;
    }
    signedInAs = sub;
    if (!user) {
      head.replaceChildren(el('h1', {}, 'A reel feed'));
      showState(state, 'signed-out', 'Sign in to open this feed', 'Feeds are private: only their owner can open them.', signInButtons());
      return;
    }
    if (!user.userId) {
      showState(state, 'loading', 'Signing in…');
      return;
    }
    if (!started) {
      started = true;
      showState(state, 'loading', 'Loading the feed…');
      app.db.subscribe('feeds:getById', { feedId: id }, onFeed, onFeedError);
    }
  });

  function onFeedError(err) {
    const { code, message } = describeError(err);
    failed = true;
    stopPages();
    head.replaceChildren(el('h1', {}, 'Feed unavailable'));
    if (code === 'FORBIDDEN') {
      showState(state, 'error', 'This feed belongs to another user',
        `You are signed in as ${app.user ? app.user.name : 'nobody'}, and feeds are private to their owner.`,
        el('a', { class: 'btn', href: 'feed.html' }, 'Go to your feeds'));
    } else if (code === 'ValidationError') {
      showState(state, 'error', 'This address does not name a feed', 'Check the link, or pick one of your feeds.',
        el('a', { class: 'btn', href: 'feed.html' }, 'Go to your feeds'));
    } else {
      showState(state, 'error', 'Could not open this feed', `${message}${code ? ` (${code})` : ''}`,
        el('a', { class: 'btn', href: 'feed.html' }, 'Go to your feeds'));
    }
  }

  function onFeed(value) {
    if (!value) {
      feed = null;
      stopPages();
      head.replaceChildren(el('h1', {}, 'No such feed'));
      showState(state, 'error', 'This feed does not exist', 'It may have been deleted.', el('a', { class: 'btn', href: 'feed.html' }, 'Go to your feeds'));
      return;
    }
    const firstTime = feed === undefined || failed;
    failed = false;
    feed = value;
    document.title = `${feed.prompt} · Reels · Herald demo`;
    renderHead();
    renderSaved();
    if (firstTime) startPages();
    else renderReels();
  }

  function renderHead() {
    if (!feed) return;
    const loaded = allReels();
    const last = pages[pages.length - 1];
    const more = last && last.result && !last.result.isDone;
    const curating = feed.status === 'pending' || feed.status === 'curating';
    head.replaceChildren(
      el('h1', {}, feed.prompt),
      el('div', { class: 'feed-facts' },
        statusBadge(feed.status),
        el('span', { id: 'reel-count' }, `${loaded.length} ${loaded.length === 1 ? 'reel' : 'reels'}${more ? ' · more below' : ''}`)),
      el('p', { class: 'feed-sub' }, ago(feed.createdAt, 'Created ')),
      el('p', { class: 'feed-sub' }, curating ? 'The worker is still adding reels: they appear live.' : 'Curated: every reel is in.'),
      el('p', { class: 'feed-sub' }, 'Your place is saved as you scroll; come back later and the feed resumes there.'));
  }

  function renderSaved() {
    if (!feed || feed.lastSeenIndex === undefined) {
      savedPill.hidden = true;
      return;
    }
    savedPill.hidden = false;
    savedPill.dataset.savedIndex = String(feed.lastSeenIndex);
    savedPill.dataset.savedReel = feed.lastSeenReelId || '';
    savedPill.textContent = `✓ Place saved: reel #${feed.lastSeenIndex + 1}`;
  }

  /* Pages: the first one reaches the saved reel, so that reopening needs one query. */
  function startPages() {
    stopPages();
    resumeTarget = fromStart || feed.lastSeenIndex === undefined ? null : feed.lastSeenIndex;
    resumed = resumeTarget === null;
    let first = PAGE_SIZE;
    if (resumeTarget !== null) {
      if (resumeTarget + 3 <= MAX_PAGE) first = Math.max(PAGE_SIZE, resumeTarget + 3);
      else fromPosition = resumeTarget; /* far down: start at the saved reel itself */
    }
    if (fromPosition !== undefined) {
      banner.hidden = false;
      banner.replaceChildren(`Resumed at reel #${resumeTarget + 1}. `,
        el('a', { href: `feed.html?feed=${encodeURIComponent(id)}&from=start` }, 'Start from the beginning'));
    }
    addPage(null, first);
  }

  function stopPages() {
    for (const p of pages) if (p.stop) p.stop();
    pages = [];
  }

  function addPage(cursor, numItems) {
    const page = { cursor, numItems, result: null, stop: null };
    pages.push(page);
    const args = { feedId: id, paginationOpts: { numItems, cursor } };
    if (fromPosition !== undefined) args.fromPosition = fromPosition;
    page.stop = app.db.subscribe('reels:listForFeed', args, (value) => {
      if (!pages.includes(page)) return;
      page.result = value;
      pagesChanged();
    }, (err) => {
      if (!pages.includes(page)) return;
      const { code, message } = describeError(err);
      showState(state, 'error', 'Could not load the reels', `${message}${code ? ` (${code})` : ''}`);
    });
    renderSentinel();
  }

  function pagesChanged() {
    /* Each page must start where the one before ends; if an earlier page moved, re-chain. */
    for (let i = 0; i < pages.length - 1; i++) {
      const r = pages[i].result;
      if (!r) break;
      if (r.isDone || r.continueCursor !== pages[i + 1].cursor) {
        for (const p of pages.splice(i + 1)) p.stop();
        if (!r.isDone) addPage(r.continueCursor, PAGE_SIZE);
        break;
      }
    }
    renderReels();
    maybeResume();
    loadMoreIfNear();
  }

  function allReels() {
    const seen = new Set();
    const out = [];
    for (const p of pages) {
      if (!p.result) break;
      for (const r of p.result.page) if (!seen.has(r._id)) { seen.add(r._id); out.push(r); }
    }
    return out;
  }

  function reelNode(r) {
    const m = r.metadata || {};
    const ready = r.status === 'ready';
    const len = m.durationSeconds ? `0:${String(m.durationSeconds).padStart(2, '0')}` : '';
    return el('article', {
      class: `reel${ready ? '' : ' reel-pending'}`,
      dataset: { reelId: r._id, position: String(r.position), status: r.status },
      'aria-label': `Reel ${r.position + 1}${m.title ? `: ${m.title}` : ''}`,
    },
    el('div', { class: 'reel-media', style: `--hue: ${Number(m.hue) || (r.position * 47) % 360}` },
      el('div', { class: 'reel-top' }, el('span', { class: 'reel-pos' }, `#${r.position + 1}`), len ? el('span', { class: 'reel-len' }, len) : ''),
      ready ? el('div', { class: 'reel-play', 'aria-hidden': 'true' }) : '',
      el('div', { class: 'reel-title' }, ready ? (m.title || `Reel ${r.position + 1}`) : `Generating reel #${r.position + 1}…`),
      el('p', { class: 'reel-caption' }, ready ? (m.caption || '') : 'The worker is making this one')),
    el('div', { class: 'reel-info' },
      el('span', {}, m.creator || ''),
      el('span', {}, `${r.sourceType} · ${r.status}`)));
  }

  function renderReels() {
    const reels = allReels();
    const keep = new Set();
    let prev = null;
    for (const r of reels) {
      keep.add(r._id);
      const key = `${r.status}|${r.updatedAt}`;
      let node = nodes.get(r._id);
      if (!node || node.dataset.key !== key) {
        const fresh = reelNode(r);
        fresh.dataset.key = key;
        if (node) {
          seenObserver.unobserve(node);
          visible.delete(node);
          if (node.getAttribute('aria-current')) fresh.setAttribute('aria-current', 'true');
          node.replaceWith(fresh);
        }
        if (!node && initialRenderDone) fresh.classList.add('reel-new');
        node = fresh;
        nodes.set(r._id, node);
        seenObserver.observe(node);
      }
      const want = prev ? prev.nextSibling : reelsBox.firstChild;
      if (want !== node) reelsBox.insertBefore(node, want);
      prev = node;
    }
    for (const [rid, node] of nodes) {
      if (!keep.has(rid)) {
        seenObserver.unobserve(node);
        visible.delete(node);
        node.remove();
        nodes.delete(rid);
      }
    }
    if (pages[0] && pages[0].result && reels.length === 0) {
      const curating = feed && (feed.status === 'pending' || feed.status === 'curating');
      showState(state, 'empty', curating ? 'Curating your feed…' : 'No reels in this feed',
        curating ? 'The worker is looking for reels: they appear here one by one, live.' : 'Nothing was added to this feed.');
    } else if (reels.length > 0) {
      state.hidden = true;
    }
    if (reels.length > 0) initialRenderDone = true;
    renderHead();
    renderSentinel();
  }

  function renderSentinel() {
    const last = pages[pages.length - 1];
    if (!last || allReels().length === 0) {
      sentinel.hidden = true;
      return;
    }
    sentinel.hidden = false;
    if (!last.result) sentinel.textContent = 'Loading more reels…';
    else if (!last.result.isDone) sentinel.textContent = 'Scroll for more';
    else if (feed && (feed.status === 'pending' || feed.status === 'curating')) sentinel.textContent = 'The worker is adding reels: new ones appear here live.';
    else sentinel.textContent = 'You’re all caught up.';
    sentinel.dataset.state = !last.result ? 'loading' : last.result.isDone ? 'end' : 'more';
  }

  function loadMoreIfNear() {
    const last = pages[pages.length - 1];
    if (!last || !last.result || last.result.isDone || sentinel.hidden) return;
    if (sentinel.getBoundingClientRect().top < innerHeight + 600) addPage(last.result.continueCursor, PAGE_SIZE);
  }

  const moreObserver = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMoreIfNear();
  }, { rootMargin: '0px 0px 600px 0px' });
  moreObserver.observe(sentinel);

  function maybeResume() {
    if (resumed) return;
    const target = [...nodes.values()].find((n) => Number(n.dataset.position) === resumeTarget);
    const last = pages[pages.length - 1];
    if (!target) {
      /* Everything up to the end is loaded and the reel is gone: nothing to go back to. */
      if (last && last.result && last.result.isDone) resumed = true;
      return;
    }
    target.scrollIntoView({ block: 'center', behavior: 'instant' });
    setCurrent(target, false);
    resumed = true;
    if (fromPosition === undefined && resumeTarget > 0) toast(`Resumed at reel #${resumeTarget + 1}, where you left off`);
  }

  /* The current reel: the one most in view (at least 60% of it). */
  let measureQueued = false;
  const seenObserver = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.isIntersecting) visible.add(e.target);
      else visible.delete(e.target);
    }
    if (!measureQueued) {
      measureQueued = true;
      requestAnimationFrame(measure);
    }
  }, { threshold: [0, 0.25, 0.6, 0.9, 1] });

  function measure() {
    measureQueued = false;
    if (!resumed) return;
    let best = null;
    let bestRatio = 0.6;
    for (const node of visible) {
      const r = node.getBoundingClientRect();
      const shown = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
      const ratio = r.height ? shown / r.height : 0;
      if (ratio >= bestRatio) {
        best = node;
        bestRatio = ratio;
      }
    }
    if (best) setCurrent(best, true);
  }
  addEventListener('scroll', () => {
    if (!measureQueued) {
      measureQueued = true;
      requestAnimationFrame(measure);
    }
  }, { passive: true });

  function setCurrent(node, save) {
    const reelId = node.dataset.reelId;
    if (current && current.id === reelId) return;
    for (const n of reelsBox.querySelectorAll('.reel[aria-current]')) n.removeAttribute('aria-current');
    node.setAttribute('aria-current', 'true');
    current = { id: reelId, position: Number(node.dataset.position) };
    if (save) scheduleSave();
  }

  /* feeds:updateProgress, at most once a second, always ending with the latest reel. */
  let lastSave = 0;
  let saveTimer = null;
  let saving = false;
  function scheduleSave() {
    if (saveTimer || saving) return;
    const wait = Math.max(0, lastSave + SAVE_EVERY_MS - Date.now());
    saveTimer = setTimeout(save, wait);
  }
  async function save() {
    saveTimer = null;
    if (!current || !feed || feed.lastSeenReelId === current.id) return;
    const reel = current;
    saving = true;
    lastSave = Date.now();
    try {
      await app.db.mutation('feeds:updateProgress', { feedId: id, lastSeenReelId: reel.id });
    } catch (err) {
      toast(`Could not save your place: ${describeError(err).message}`, 'error');
    } finally {
      saving = false;
    }
    if (current && current.id !== reel.id) scheduleSave();
  }
  addEventListener('pagehide', () => {
    if (saveTimer) {
      clearTimeout(saveTimer);
      save();
    }
  });
}
