/*
 * The jobs dashboard: a live subscription to videos:list (examples/twitch-jobs),
 * one card per video with its progress bar, stage, ETA and error; "Start a job"
 * calls videos:create, "Retry" videos:retry. The worker (worker.py) pushes the
 * progress; the client applies each diff and render() updates the cards in place.
 */
import { startApp, el, toast, describeError, formatDuration, ago } from './app.js';

const STAGES = ['Downloading', 'Fetching chat', 'Transcribing', 'Analyzing', 'Finding highlights'];
const FILTERS = [
  { key: 'all', label: 'All', test: () => true },
  { key: 'active', label: 'In progress', test: (v) => STAGES.includes(v.status) },
  { key: 'queued', label: 'Queued', test: (v) => v.status === 'Queued' },
  { key: 'failed', label: 'Failed', test: (v) => v.status === 'Failed' },
  { key: 'completed', label: 'Completed', test: (v) => v.status === 'Completed' },
];
const TITLES = ['Friday speedrun', 'Cozy cooking stream', 'Chess puzzles with chat', 'Modular synth jam',
  'Building a compiler live', 'Indie horror first look', 'Sunday sketchbook', 'Retro console repair'];

const app = await startApp({ page: 'jobs' });
const list = document.getElementById('jobs');
const state = document.getElementById('jobs-state');
const filtersBox = document.getElementById('filters');
const form = document.getElementById('start-job');
const titleInput = document.getElementById('job-title');
const startButton = document.getElementById('start-button');
const startHint = document.getElementById('start-hint');
const hintText = startHint.textContent;

let videos = null; /* the subscription's current result */
let filter = 'all';
const cards = new Map(); /* twitchId -> {node, parts} */

titleInput.placeholder = `e.g. ${TITLES[Math.floor(Math.random() * TITLES.length)]}`;

app.onUser((user) => {
  startButton.disabled = false;
  startHint.textContent = user ? hintText : 'Sign in (top right) to start or retry jobs. Anyone can watch.';
  startHint.classList.toggle('hint-warn', !user);
  if (videos) render();
});

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  if (!app.user) {
    app.openSignIn();
    toast('Sign in to start a job', 'error');
    return;
  }
  const title = titleInput.value.trim() || titleInput.placeholder.replace(/^.*e\.g\. /, '');
  /* A fresh Twitch-like id and job id; videos:create refuses a twitchId it already has. */
  const twitchId = String(2000000000 + Math.floor(Math.random() * 999999999));
  const jobId = `job-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  startButton.disabled = true;
  /* Show where the new job lands. */
  if (filter !== 'all' && filter !== 'queued' && videos) {
    filter = 'all';
    render();
  }
  try {
    await app.db.mutation('videos:create', { twitchId, title, jobId });
    titleInput.value = '';
    /* The new card is already there (the mutation resolves after its update): point at it. */
    const card = cards.get(twitchId);
    if (card) card.node.classList.add('job-new');
  } catch (err) {
    toast(`Could not start the job: ${describeError(err).message}`, 'error');
  } finally {
    startButton.disabled = false;
  }
});

async function retry(video, button) {
  if (!app.user) {
    app.openSignIn();
    toast('Sign in to retry a job', 'error');
    return;
  }
  button.disabled = true;
  button.textContent = 'Retrying…';
  try {
    await app.db.mutation('videos:retry', { twitchId: video.twitchId });
    toast(`“${video.title}” is queued again`);
  } catch (err) {
    button.disabled = false;
    button.textContent = 'Retry';
    toast(`Retry failed: ${describeError(err).message}`, 'error');
  }
}

function showState(kind, title, text, action) {
  state.hidden = false;
  state.className = `state state-${kind}`;
  state.replaceChildren(el('p', { class: 'state-title' }, title), text ? el('p', {}, text) : '', action || '');
}

function statusClass(status) {
  if (status === 'Completed') return 'completed';
  if (status === 'Failed') return 'failed';
  if (status === 'Queued') return 'queued';
  return 'active';
}

function makeCard(v) {
  const parts = {
    title: el('h2', { class: 'job-title' }),
    badge: el('span', { class: 'badge' }),
    meta: el('p', { class: 'job-meta' }),
    fill: el('div', { class: 'progress-fill' }),
    stage: el('span', { class: 'job-stage' }),
    pct: el('span', { class: 'job-pct' }),
    eta: el('span', { class: 'job-eta' }),
    steps: el('ol', { class: 'job-steps', 'aria-hidden': 'true' }, STAGES.map((s) => el('li', { title: s }))),
    error: el('div', { class: 'job-error', hidden: true }),
  };
  parts.bar = el('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, parts.fill);
  const node = el('li', { class: 'job card', dataset: { twitchId: v.twitchId } },
    el('div', { class: 'job-main' }, parts.title, parts.meta),
    el('div', { class: 'job-progress' }, parts.bar,
      el('div', { class: 'job-foot' }, parts.stage, parts.steps, parts.eta, parts.pct)),
    parts.badge,
    parts.error);
  return { node, parts, key: '' };
}

function fillCard(card, v) {
  /* Queued cards change with time alone (the "is the worker running?" hint). */
  const key = JSON.stringify(v) + (app.user ? 'u' : '') + (v.status === 'Queued' ? Math.floor(Date.now() / 10000) : '');
  if (card.key === key) return;
  card.key = key;
  const { node, parts } = card;
  const cls = statusClass(v.status);
  const pct = Math.max(0, Math.min(100, Number(v.progressPercentage ?? (v.status === 'Completed' ? 100 : 0))));
  node.dataset.status = v.status;
  node.dataset.jobId = v.jobId || '';
  node.className = `job card job-${cls}${node.classList.contains('job-new') ? ' job-new' : ''}`;
  parts.title.textContent = v.title;
  parts.badge.className = `badge badge-${cls}`;
  parts.badge.textContent = v.status;
  parts.meta.replaceChildren(
    v.jobId ? el('span', { class: 'mono' }, v.jobId) : '',
    el('span', {}, `Twitch ${v.twitchId}`),
    v.retryCount ? el('span', {}, `${v.retryCount} ${v.retryCount === 1 ? 'retry' : 'retries'}`) : '',
    v.createdAt ? ago(v.createdAt, 'created ') : '');
  parts.bar.setAttribute('aria-valuenow', String(pct));
  parts.bar.setAttribute('aria-label', `${v.title}: ${pct}%`);
  parts.fill.style.width = `${pct}%`;
  parts.pct.textContent = `${Math.round(pct)}%`;

  let stage;
  let eta = '';
  if (v.status === 'Queued') {
    const waiting = v.createdAt && Date.now() - v.updatedAt > 20000;
    stage = waiting ? 'Waiting for a worker — is web-demo/worker.py running?' : 'Waiting for a worker…';
  } else if (v.status === 'Completed') {
    const took = v.processingStartedAt && v.processingCompletedAt ? (v.processingCompletedAt - v.processingStartedAt) / 1000 : null;
    stage = took !== null && took >= 0 ? `Done in ${formatDuration(took)}` : 'Done';
  } else if (v.status === 'Failed') {
    stage = v.currentStage ? `Stopped during ${v.currentStage}` : 'Stopped';
  } else {
    stage = v.currentStage || v.status;
    if (v.estimatedCompletionSeconds !== undefined) eta = `ETA ${formatDuration(v.estimatedCompletionSeconds)}`;
  }
  parts.stage.textContent = stage;
  parts.eta.textContent = eta;
  const at = STAGES.indexOf(v.currentStage || v.status);
  parts.steps.hidden = cls === 'queued';
  [...parts.steps.children].forEach((li, i) => {
    li.className = v.status === 'Completed' || i < at ? 'done' : i === at ? (cls === 'failed' ? 'broke' : 'now') : '';
  });

  if (v.status === 'Failed') {
    parts.error.hidden = false;
    const children = [
      el('div', { class: 'error-line' },
        el('span', { class: 'error-type mono' }, v.errorType || 'unknown_error'),
        el('span', { class: 'error-message' }, v.errorMessage || 'The job failed')),
    ];
    if (v.errorDetails) children.push(el('p', { class: 'error-details' }, v.errorDetails));
    if (v.isRetryable) {
      const button = el('button', { type: 'button', class: 'btn btn-small btn-retry', dataset: { retry: v.twitchId } }, 'Retry');
      button.addEventListener('click', () => retry(v, button));
      children.push(el('div', { class: 'error-actions' }, button,
        app.user ? el('span', { class: 'hint' }, 'This error is retryable.') : el('span', { class: 'hint' }, 'Sign in to retry.')));
    } else {
      children.push(el('div', { class: 'error-actions' }, el('span', { class: 'not-retryable' }, 'Not retryable: fix the video and start a new job.')));
    }
    parts.error.replaceChildren(...children);
  } else {
    parts.error.hidden = true;
    parts.error.replaceChildren();
  }
}

function renderFilters() {
  const counts = Object.fromEntries(FILTERS.map((f) => [f.key, videos ? videos.filter(f.test).length : 0]));
  filtersBox.replaceChildren(...FILTERS.map((f) => el('button', {
    type: 'button', role: 'tab', class: 'chip', 'aria-selected': String(filter === f.key), dataset: { filter: f.key },
    onclick: () => { filter = f.key; render(); },
  }, f.label, el('span', { class: 'chip-count' }, String(counts[f.key])))));
}

function render() {
  renderFilters();
  const f = FILTERS.find((x) => x.key === filter);
  const shown = videos.filter(f.test);
  const seen = new Set();
  let prev = null;
  for (const v of shown) {
    seen.add(v.twitchId);
    let card = cards.get(v.twitchId);
    if (!card) {
      card = makeCard(v);
      cards.set(v.twitchId, card);
    }
    fillCard(card, v);
    /* Keep the order of the result without re-creating nodes (the bars animate). */
    const want = prev ? prev.nextSibling : list.firstChild;
    if (want !== card.node) list.insertBefore(card.node, want);
    prev = card.node;
  }
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.node.remove();
      if (!videos.some((v) => v.twitchId === id)) cards.delete(id);
    }
  }
  if (videos.length === 0) {
    showState('empty', 'No jobs yet', 'Start one above: the worker picks it up and its bar fills live.');
  } else if (shown.length === 0) {
    showState('empty', `No ${f.label.toLowerCase()} jobs`, 'Jobs show up here as soon as their status changes.');
  } else {
    state.hidden = true;
  }
}

setInterval(() => { if (videos) render(); }, 10000);

showState('loading', 'Loading jobs…');
app.db.subscribe('videos:list', {}, (value) => {
  videos = value || [];
  render();
}, (err) => {
  const { code, message } = describeError(err);
  list.replaceChildren();
  cards.clear();
  showState('error', 'Could not load the jobs', `${message}${code ? ` (${code})` : ''}`);
});
