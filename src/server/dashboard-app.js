'use strict';
// Everything rendered goes through h(): text nodes and setAttribute only, never innerHTML (payloads are user input).
// Nothing here polls: the server pushes counts and workers over one SSE stream (GET /v1/dashboard/events), and the
// page reads the lists again only when the counts moved, the open job only when its own stream says it changed.
const $ = (id) => document.getElementById(id);
const COUNTS = ['queued', 'delayed', 'processing', 'done', 'error', 'canceled'];
const RARE = ['moving', 'moved'];
const TERMINAL = ['done', 'error', 'canceled', 'moved'];
const PAGE = 15;
// The token is never kept by the page: signing in trades it for an HttpOnly session cookie (POST /v1/session)
// and the session's secret, kept in sessionStorage (this origin, this tab) and sent as x-reasonq-csrf.
const CSRF_KEY = 'reasonq.csrf';
const st = { session: false, csrf: sessionStorage.getItem(CSRF_KEY) || '', locked: false, status: '', queue: '', sessionId: '', cursors: [null], page: 0, next: null, sel: null, job: null, es: null, gen: 0, seen: {},
  stream: null, jobSeq: 0, shownSeq: 0, fetchTimer: 0, feed: null, feedFails: 0, seq: -1, stats: null, win: '1h', analyticsAt: 0, finished: -1, checked: new Set(), pageJobs: [] };

function h(tag, props, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids.flat(Infinity)) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}
const put = (el, ...kids) => el.replaceChildren(...kids.flat(Infinity).filter((c) => c != null && c !== false));
/** True when `data` is what was rendered under `key` last time, so the DOM is left alone. */
function same(key, data) { const s = JSON.stringify(data); if (st.seen[key] === s) return true; st.seen[key] = s; return false; }
const enc = encodeURIComponent;
const badge = (s) => h('span', { class: `badge s-${s}`, 'data-testid': 'status' }, s);
// UUIDv7s share their leading timestamp digits; the tail is what tells them apart.
const shortId = (id) => (id.length <= 12 ? id : `…${id.slice(-8)}`);
const pad = (n, w = 2) => String(n).padStart(w, '0');
const ms = (v) => (v ? new Date(v).getTime() : NaN);
function clock(v, withMs) { if (!v) return '—'; const d = new Date(v); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${withMs ? '.' + pad(d.getMilliseconds(), 3) : ''}`; }
function ago(v) { const s = Math.max(0, Math.round((Date.now() - ms(v)) / 1000)); return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : s < 172800 ? `${Math.floor(s / 3600)}h ago` : `${Math.floor(s / 86400)}d ago`; }
function span(d) {
  if (!Number.isFinite(d)) return '—';
  d = Math.max(0, Math.round(d));
  return d < 1000 ? `${d} ms` : d < 60000 ? `${(d / 1000).toFixed(d < 10000 ? 2 : 1)} s` : d < 3600000 ? `${Math.floor(d / 60000)}m ${pad(Math.round((d % 60000) / 1000))}s` : `${Math.floor(d / 3600000)}h ${pad(Math.floor((d % 3600000) / 60000))}m`;
}
const json = (v) => JSON.stringify(v, null, 2);
const goal = (j) => (j.payload && typeof j.payload.goal === 'string' ? j.payload.goal : j.payload ? JSON.stringify(j.payload) : '');
const num = (n) => (n == null ? '—' : Number(n).toLocaleString('en-US'));
/** How long the job waited for a worker: from due (run_at, else created) to its start; still waiting: until now. */
function waitMs(j) {
  const due = ms(j.run_at) || ms(j.created_at);
  if (j.started_at) return ms(j.started_at) - due;
  return j.status === 'queued' && Date.now() >= due ? Date.now() - due : NaN;
}
/** How long the last attempt ran; running: until now. */
function runMs(j) {
  if (!j.started_at) return NaN;
  return (j.finished_at ? ms(j.finished_at) : j.status === 'processing' ? Date.now() : NaN) - ms(j.started_at);
}
/** A duration that grows by itself (the 1 s ticker rewrites it from `data-since`): no request. */
const since = (from, cls = 'since') => h('span', { class: cls, 'data-since': from }, span(Date.now() - ms(from)));
const stalledMark = (j) => (j.stalled ? h('span', { class: 'flag warn', 'data-testid': 'stalled', title: 'its lease ran out: the worker died or froze; the sweep requeues it' }, 'stalled') : j.stalls > 0 ? h('span', { class: 'flag', 'data-testid': 'stalls', title: `lost its worker ${j.stalls} time(s) before` }, `${j.stalls}× stalled`) : null);

class ApiError extends Error { constructor(status, code, message) { super(message); this.status = status; this.code = code; } }
async function api(path, method = 'GET', body) {
  const headers = { accept: 'application/json' };
  if (st.csrf) headers['x-reasonq-csrf'] = st.csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try { res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'same-origin' }); }
  catch (e) { throw new ApiError(0, 'NETWORK', `server not reachable (${e.message})`); }
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (res.ok) return data;
  const err = (data && data.error) || {};
  if (res.status === 401 && !path.startsWith('/v1/session')) lock();
  throw new ApiError(res.status, err.code || `HTTP_${res.status}`, err.message || res.statusText);
}

// ---- auth
function lock() {
  if (st.locked) return;
  st.locked = true; closeSSE(); closeFeed();
  document.body.classList.add('locked'); $('auth').hidden = false;
  $('auth-error').textContent = st.session ? 'The session ended; sign in again.' : '';
  setConn('locked', 'token required'); $('token-input').focus();
}
$('auth-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('token-input').value.trim();
  if (!t) { $('auth-error').textContent = 'Enter the API token.'; return; }
  $('token-input').value = '';
  let signed;
  try { signed = await api('/v1/session', 'POST', { token: t }); }
  catch (e) { $('auth-error').textContent = e.status === 401 ? 'The server rejected this token.' : `${e.code}: ${e.message}`; return; }
  st.session = true; st.csrf = signed.csrf; sessionStorage.setItem(CSRF_KEY, signed.csrf); unlock();
});
$('token-forget').addEventListener('click', async () => {
  try { await api('/v1/session', 'DELETE'); } catch { /* signed out either way */ }
  st.session = false; st.csrf = ''; sessionStorage.removeItem(CSRF_KEY); st.locked = false; lock();
});
/** Try the API again with the current session; a 401 locks the page again. */
function unlock() { st.locked = false; st.seen = {}; st.seq = -1; document.body.classList.remove('locked'); $('auth').hidden = true; start(); }
function setConn(cls, text) { const c = $('conn'); c.className = cls; c.textContent = text; $('token-forget').hidden = !st.session; }

// ---- the push: one EventSource; on a cut it reconnects with a fresh ticket, 1 s, 2 s … 10 s apart
function closeFeed() { if (st.feed) st.feed.close(); st.feed = null; }
async function openFeed() {
  if (st.locked || st.feed) return;
  const q = new URLSearchParams();
  try {
    if (st.session) { const { ticket } = await api('/v1/dashboard/events/ticket', 'POST'); if (ticket) q.set('ticket', ticket); }
  } catch (e) { if (!st.locked) feedLost(`${e.code}: ${e.message}`); return; }
  if (st.locked || st.feed) return;
  const qs = String(q);
  const es = new EventSource(`/v1/dashboard/events${qs ? `?${qs}` : ''}`);
  st.feed = es;
  es.onopen = () => { if (st.feed === es) { st.feedFails = 0; setConn('live', 'live'); } };
  es.addEventListener('stats', (e) => { if (st.feed === es) onStats(JSON.parse(e.data)); });
  es.addEventListener('workers', (e) => { if (st.feed === es) renderWorkers(JSON.parse(e.data).workers); });
  es.addEventListener('feed_error', (e) => { if (st.feed === es) setConn('down', `store: ${JSON.parse(e.data).message}`); });
  // The server ends a stream after its lifetime, or went away: open a new one (a new ticket: the old may have expired).
  es.onerror = () => { if (st.feed !== es) return; closeFeed(); feedLost('reconnecting…'); };
}
function feedLost(text) {
  st.feedFails += 1;
  setConn('down', text);
  // A session that ended shows at the reopen: its ticket request answers 401, which locks the page.
  setTimeout(() => { void openFeed(); }, Math.min(1000 * st.feedFails, 10_000));
}

function onStats(stats) {
  st.stats = stats;
  if ($('conn').className !== 'live') setConn('live', 'live'); // after a feed_error, a read that worked
  renderStats(stats);
  if (stats.seq !== st.seq) { st.seq = stats.seq; reloadLists(); }
  // Finished jobs moved the analytics: read them again, at most every 15 s.
  const finished = stats.totals.done + stats.totals.error + stats.totals.canceled;
  if (finished !== st.finished) { st.finished = finished; scheduleAnalytics(); }
}

function renderStats(stats) {
  const shown = [...COUNTS, ...RARE.filter((s) => stats.totals[s] > 0)];
  if (!same('totals', [stats.totals, shown])) {
    put($('totals'), shown.map((s) => h('div', { class: `total s-${s}`, 'data-testid': `total-${s}`, title: s === 'queued' ? 'due now, waiting for a worker' : s === 'delayed' ? 'waiting for their run_at (a retry backoff or a delay)' : null },
      h('b', null, num(stats.totals[s])), h('span', null, s === 'processing' ? 'running' : s))));
  }
  const names = Object.keys(stats.queues).sort();
  const per = (st.analytics && st.analytics.queues) || {};
  if (!same('queues', [stats.queues, st.queue, per])) {
    put($('queues').tBodies[0], names.length ? names.map((q) => h('tr', { class: q === st.queue ? 'click sel' : 'click', 'data-queue': q, title: `show the jobs of ${q}`, onclick: () => setFilter(st.status, q === st.queue ? '' : q) },
      h('td', { class: 'mono' }, q),
      COUNTS.map((s) => h('td', { class: stats.queues[q][s] ? `num c-${s}` : 'num zero', 'data-status': s }, num(stats.queues[q][s]))),
      h('td', { class: per[q] && per[q].failure_rate > 0.05 ? 'num c-error' : 'num', 'data-testid': 'queue-failure' }, per[q] ? pct(per[q].failure_rate) : '—'),
      h('td', { class: 'num dur', 'data-testid': 'queue-run-p50' }, per[q] && per[q].run_ms.count ? span(per[q].run_ms.p50) : '—')))
      : h('tr', null, h('td', { class: 'empty', colspan: 9 }, 'no jobs yet')));
  }
  fillQueueSelect(names);
}
function fillQueueSelect(names) {
  const sel = $('filter-queue');
  const opts = [...new Set([...names, st.queue].filter(Boolean))].sort();
  if (!same('queue-options', opts)) put(sel, h('option', { value: '' }, 'all queues'), opts.map((q) => h('option', { value: q }, q)));
  sel.value = st.queue;
}

function renderWorkers(workers) {
  workers.sort((a, b) => Number(b.alive) - Number(a.alive) || a.id.localeCompare(b.id));
  $('workers-n').textContent = workers.filter((w) => w.alive).length;
  put($('workers').tBodies[0], workers.length ? workers.map((w) => h('tr', { 'data-worker-id': w.id, 'data-alive': String(w.alive), class: w.alive ? null : 'stale' },
    h('td', { class: 'mono wid', title: `${w.id} · ${w.host} pid ${w.pid} · up since ${clock(w.started_at)}` }, w.id),
    h('td', null, h('span', { class: `badge s-${w.alive ? 'alive' : 'stale'}`, 'data-testid': 'worker-state', title: w.alive ? `heartbeat within its ${span(w.ttl_ms)} ttl` : `no heartbeat for ${ago(w.last_seen).replace(' ago', '')} (ttl ${span(w.ttl_ms)}): dead or cut off` }, w.alive ? 'alive' : 'stale')),
    h('td', { class: 'mono wq', title: w.queues.join(', ') }, w.queues.join(', ')),
    h('td', { class: 'num', title: w.alive ? 'running / concurrency' : 'what it last reported before it stopped answering' }, h('span', { class: 'meter' }, h('i', { 'data-fill': String(Math.round((100 * w.running) / Math.max(1, w.concurrency))) })), `${w.running}/${w.concurrency}`),
    h('td', { class: 'num' }, `${num(w.processed)} / ${num(w.failed)}`),
    h('td', { class: w.alive ? 'muted' : 'warn-text', 'data-ago': w.last_seen }, ago(w.last_seen))))
    : h('tr', null, h('td', { class: 'empty', colspan: 6 }, 'no workers registered')));
  // Meter widths through the CSSOM (the CSP forbids style attributes, not this).
  for (const i of $('workers').querySelectorAll('.meter i')) i.style.width = `${i.dataset.fill}%`;
}

// ---- lists: read again when the pushed counts moved (one read at a time, the last ask wins)
let listsBusy = false, listsAgain = false, listsTimer = 0;
function reloadLists() {
  clearTimeout(listsTimer);
  listsTimer = setTimeout(async () => {
    if (listsBusy) { listsAgain = true; return; }
    listsBusy = true;
    try {
      const r = await Promise.allSettled([loadLists(), loadJobs(), st.sel && !st.es ? fetchJob(st.sel) : null]);
      const bad = r.find((x) => x.status === 'rejected');
      if (bad && !st.locked && !(bad.reason.status === 404)) toast(`${bad.reason.code}: ${bad.reason.message}`, 'err');
    } finally { listsBusy = false; }
    if (listsAgain) { listsAgain = false; reloadLists(); }
  }, 100);
}

function jobItem(j, kind) {
  const meta = kind === 'running' ? [h('span', { class: 'muted' }, `try ${j.attempts}/${j.max_attempts}`), stalledMark(j), j.started_at ? since(j.started_at, 'since dur') : null]
    : kind === 'done' ? [h('span', { class: 'dur', title: 'run time of the last attempt' }, span(runMs(j))), h('span', { class: 'muted', title: `finished ${j.finished_at}` }, clock(j.finished_at))]
    : [j.error ? h('span', { class: 'mono err-code' }, j.error.code) : null, h('span', { class: 'muted' }, `${j.attempts}/${j.max_attempts}`), h('span', { class: 'muted', title: `finished ${j.finished_at}` }, clock(j.finished_at))];
  return h('li', { 'data-job-id': j.id, 'data-status': j.status, title: `${j.id}\n${goal(j)}`, onclick: () => openJob(j.id) },
    kind === 'running' ? h('span', { class: 'mono' }, shortId(j.id)) : badge(j.status), h('span', { class: 'grow' }, goal(j)), meta);
}
async function loadLists() {
  const [run, done, failed] = await Promise.all(['processing&limit=10', 'done&limit=6', 'error&limit=6'].map((q) => api(`/v1/jobs?status=${q}`)));
  $('running-n').textContent = run.jobs.length + (run.next_cursor ? '+' : '');
  const fill = (id, jobs, kind, none) => { if (!same(id, jobs)) put($(id), jobs.length ? jobs.map((j) => jobItem(j, kind)) : h('li', { class: 'empty' }, none)); };
  fill('running', run.jobs, 'running', 'nothing running');
  // Newest finish first, whatever order the store lists them in.
  const byFinish = (jobs) => [...jobs].sort((a, b) => ms(b.finished_at) - ms(a.finished_at));
  fill('recent-done', byFinish(done.jobs), 'done', 'none yet');
  fill('recent-failed', byFinish(failed.jobs), 'failed', 'none');
}

function setFilter(status, queue) {
  st.status = status; st.queue = queue; st.cursors = [null]; st.page = 0; st.next = null; st.gen += 1; st.checked.clear();
  // Paging waits for the new first page to say whether there is a next one.
  $('page-next').disabled = true; $('page-prev').disabled = true; $('page-info').textContent = 'page 1';
  $('filter-status').value = status;
  // The selector shows the queue picked by a click on the table too.
  fillQueueSelect(st.stats ? Object.keys(st.stats.queues).sort() : []);
  if (st.stats) renderStats(st.stats);
  $('btn-retry-all').textContent = queue ? `Retry failed in ${queue}` : 'Retry all failed';
  reloadLists(); loadAnalytics();
}
$('filter-status').addEventListener('change', (e) => setFilter(e.target.value, st.queue));
$('filter-queue').addEventListener('change', (e) => setFilter(st.status, e.target.value));
$('page-next').addEventListener('click', () => { if (!st.next) return; st.cursors[st.page + 1] = st.next; st.page += 1; st.next = null; st.gen += 1; $('page-next').disabled = true; reloadLists(); });
$('page-prev').addEventListener('click', () => { if (st.page === 0) return; st.page -= 1; st.next = null; st.gen += 1; $('page-next').disabled = true; reloadLists(); });

const retryable = (j) => j.status === 'error' || j.status === 'canceled';
async function loadJobs() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (st.status) q.set('status', st.status);
  if (st.queue) q.set('queue', st.queue);
  if (st.sessionId) q.set('session_id', st.sessionId);
  if (st.cursors[st.page]) q.set('cursor', st.cursors[st.page]);
  const gen = st.gen;
  let page;
  try { page = await api(`/v1/jobs?${q}`); }
  catch (e) {
    if (gen !== st.gen) return;
    if (st.sessionId && e.status === 400) { put($('jobs').tBodies[0], h('tr', null, h('td', { class: 'empty', colspan: 9 }, 'this server cannot list by session_id (GET /v1/jobs?session_id= is not supported)'))); return; }
    throw e;
  }
  if (gen !== st.gen) return;
  st.next = page.next_cursor; st.pageJobs = page.jobs;
  $('page-prev').disabled = st.page === 0; $('page-next').disabled = !st.next; $('page-info').textContent = `page ${st.page + 1}`;
  for (const id of [...st.checked]) if (!page.jobs.some((j) => j.id === id && retryable(j))) st.checked.delete(id);
  syncChecks();
  if (same('jobs', [page.jobs, st.sel, [...st.checked]])) return;
  put($('jobs').tBodies[0], page.jobs.length ? page.jobs.map((j) => h('tr', { class: j.id === st.sel ? 'click sel' : 'click', 'data-job-id': j.id, 'data-status': j.status, onclick: () => openJob(j.id) },
    h('td', { class: 'cb', onclick: (e) => e.stopPropagation() }, retryable(j) ? h('input', { type: 'checkbox', 'data-testid': 'row-check', 'aria-label': `select ${j.id}`, checked: st.checked.has(j.id), onchange: (e) => { if (e.target.checked) st.checked.add(j.id); else st.checked.delete(j.id); syncChecks(); } }) : null),
    h('td', { class: 'mono', title: j.id }, shortId(j.id)), h('td', { class: 'mono q' }, j.queue), h('td', null, badge(j.status === 'queued' && ms(j.run_at) > Date.now() ? 'delayed' : j.status), stalledMark(j)),
    h('td', { class: j.attempts > 1 ? 'num warn-text' : 'num', 'data-testid': 'tries' }, `${j.attempts}/${j.max_attempts}`),
    h('td', { class: 'num dur', 'data-testid': 'wait' }, j.status === 'queued' && !j.started_at && Date.now() >= (ms(j.run_at) || 0) ? since(j.run_at || j.created_at) : span(waitMs(j))),
    h('td', { class: 'num dur', 'data-testid': 'run' }, j.status === 'processing' && j.started_at ? since(j.started_at) : span(runMs(j))),
    h('td', { class: 'goal', title: goal(j) }, goal(j)),
    h('td', { class: 'muted', title: j.finished_at ? `finished ${j.finished_at}` : `created ${j.created_at}` }, j.finished_at ? clock(j.finished_at) : j.status === 'queued' && ms(j.run_at) > Date.now() ? `due ${clock(j.run_at).slice(0, 5)}` : clock(j.created_at))))
    : h('tr', null, h('td', { class: 'empty', colspan: 9 }, st.sessionId ? `no job of session ${st.sessionId}` : 'no jobs match')));
}
function syncChecks() {
  $('btn-retry-selected').disabled = st.checked.size === 0;
  $('btn-retry-selected').textContent = st.checked.size ? `Retry selected (${st.checked.size})` : 'Retry selected';
  const all = st.pageJobs.filter(retryable);
  $('select-all').checked = all.length > 0 && all.every((j) => st.checked.has(j.id));
}
$('select-all').addEventListener('change', (e) => {
  for (const j of st.pageJobs.filter(retryable)) if (e.target.checked) st.checked.add(j.id); else st.checked.delete(j.id);
  delete st.seen.jobs; syncChecks(); reloadLists();
});

// ---- search: a job id opens the job; anything else lists that session's jobs
$('search-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('search').value.trim();
  if (!text) { setSession(''); return; }
  try { await api(`/v1/jobs/${enc(text)}`); openJob(text); $('search').value = ''; return; }
  catch (e) { if (e.status !== 404) { toast(`${e.code}: ${e.message}`, 'err'); return; } }
  setSession(text);
});
function setSession(id) {
  st.sessionId = id;
  const chip = $('search-chip');
  chip.hidden = !id;
  put(chip, id ? [h('span', { class: 'muted' }, 'session_id = '), h('b', { class: 'mono' }, id), h('button', { type: 'button', class: 'x', 'aria-label': 'clear the search', onclick: () => { $('search').value = ''; setSession(''); } }, '✕')] : []);
  setFilter(st.status, st.queue);
}

// ---- bulk retry, after a confirmation; the answer in a toast
function confirmBox(text, yes) {
  const d = $('confirm');
  $('confirm-text').textContent = text; $('confirm-yes').textContent = yes;
  d.returnValue = '';
  d.showModal();
  return new Promise((resolve) => d.addEventListener('close', () => resolve(d.returnValue === 'yes'), { once: true }));
}
let toastTimer = 0;
function toast(text, cls = 'ok') {
  const t = $('toast');
  t.textContent = text; t.className = cls; t.hidden = false;
  clearTimeout(toastTimer); toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
}
async function bulkRetry(body, what) {
  if (!(await confirmBox(`Retry ${what}? Each goes back to its queue with a fresh set of attempts.`, 'Retry'))) return;
  try {
    const out = await api('/v1/jobs:retry', 'POST', body);
    const skipped = out.skipped.length ? `; ${out.skipped.length} skipped (${out.skipped.slice(0, 3).map((s) => `${shortId(s.id)}: ${s.code}`).join(', ')}${out.skipped.length > 3 ? ', …' : ''})` : '';
    toast(`Retried ${out.retried.length} job${out.retried.length === 1 ? '' : 's'}${skipped}.`, out.skipped.length ? 'warn' : 'ok');
    st.checked.clear(); syncChecks(); delete st.seen.jobs; reloadLists();
  } catch (e) {
    toast(e.status === 404 && e.code === 'NOT_FOUND' ? 'This server has no bulk retry (POST /v1/jobs:retry).' : `Retry failed — ${e.code}: ${e.message}`, 'err');
  }
}
/** Jobs one bulk retry takes at most (the API's limit); a bigger backlog takes several clicks. */
const BULK_MAX = 500;
$('btn-retry-all').addEventListener('click', () => bulkRetry({ ...(st.queue ? { queue: st.queue } : {}), status: 'error', limit: BULK_MAX },
  `every failed job${st.queue ? ` in ${st.queue}` : ''} (up to ${num(BULK_MAX)}${st.stats ? `; ${num((st.queue ? st.stats.queues[st.queue] : st.stats.totals)?.error ?? 0)} failed now` : ''})`));
$('btn-retry-selected').addEventListener('click', () => bulkRetry({ ids: [...st.checked] }, `${st.checked.size} selected job${st.checked.size === 1 ? '' : 's'}`));

// ---- analytics: read on open, on a window or queue change, and when jobs finished (at most every 15 s)
const ANALYTICS_MS = 15_000;
let analyticsTimer = 0;
function scheduleAnalytics() {
  if (analyticsTimer) return;
  analyticsTimer = setTimeout(() => { analyticsTimer = 0; loadAnalytics(); }, Math.max(0, st.analyticsAt + ANALYTICS_MS - Date.now()));
}
for (const b of document.querySelectorAll('.seg button')) b.addEventListener('click', () => {
  st.win = b.dataset.window;
  for (const o of document.querySelectorAll('.seg button')) o.classList.toggle('on', o === b);
  loadAnalytics();
});
let analyticsGen = 0;
async function loadAnalytics() {
  const gen = ++analyticsGen;
  st.analyticsAt = Date.now();
  const q = new URLSearchParams({ window: st.win });
  if (st.queue) q.set('queue', st.queue);
  $('charts-scope').textContent = `${st.queue ? st.queue : 'all queues'} · last ${st.win === '1h' ? 'hour' : '24 hours'}`;
  let a;
  try { a = await api(`/v1/analytics?${q}`); }
  catch (e) {
    if (gen !== analyticsGen) return;
    const note = $('charts-note');
    note.hidden = false;
    // No such route: a 404, or the 400 the server gives any unrouted request with a query string.
    const absent = (e.status === 404 && e.code === 'NOT_FOUND') || (e.status === 400 && /unknown query parameter/.test(e.message));
    note.textContent = absent ? 'analytics unavailable: this server has no /v1/analytics' : `analytics unavailable — ${e.code}: ${e.message}`;
    $('charts').hidden = true; put($('summary'));
    return;
  }
  if (gen !== analyticsGen) return;
  // Nothing finished in the window: say so instead of five empty charts.
  const none = a.totals.finished === 0;
  $('charts-note').hidden = !none; $('charts').hidden = none;
  if (none) $('charts-note').textContent = `No job finished in the last ${st.win === '1h' ? 'hour' : '24 hours'}${st.queue ? ` in ${st.queue}` : ''}.`;
  st.analytics = a;
  renderAnalytics(a);
  if (st.stats) renderStats(st.stats); // the queues' failure rate and run time
}
const pct = (v) => (v == null ? '—' : `${(v * 100).toFixed(v > 0 && v < 0.1 ? 1 : 0)}%`);
const compact = (v) => (v >= 1e6 ? `${(v / 1e6).toFixed(1)}M` : v >= 1e4 ? `${Math.round(v / 1e3)}k` : v >= 1e3 ? `${(v / 1e3).toFixed(1)}k` : String(Math.round(v * 10) / 10));
function renderAnalytics(a) {
  const t = a.totals;
  const stat = (label, value, tid, cls) => h('div', { class: `stat ${cls || ''}`, 'data-testid': tid }, h('b', null, value), h('span', null, label));
  put($('summary'),
    stat('finished', num(t.finished), 'sum-finished'),
    stat('per minute', t.throughput_per_min == null ? '—' : t.throughput_per_min.toFixed(t.throughput_per_min < 10 ? 2 : 0), 'sum-throughput'),
    stat('failure rate', pct(t.failure_rate), 'sum-failure', t.failure_rate > 0.05 ? 'bad' : ''),
    stat('wait p50 / p90', `${span(t.wait_ms.p50)} / ${span(t.wait_ms.p90)}`, 'sum-wait'),
    stat('run p50 / p90', `${span(t.run_ms.p50)} / ${span(t.run_ms.p90)}`, 'sum-run'),
    stat('tokens in / out', `${compact(t.usage.prompt_tokens)} / ${compact(t.usage.completion_tokens)}`, 'sum-tokens'));
  const s = a.series;
  const at = s.map((p) => ms(p.at));
  const col = (k) => s.map((p) => p[k]);
  const failure = s.map((p) => { const n = p.done + p.error + p.canceled; return n ? p.error / n : null; });
  const dur = (v) => span(v);
  const draw = () => {
    rqCharts.chart($('chart-throughput'), { label: 'finished jobs per bucket', at, floor: 4, series: [{ name: 'done', cls: 'c-done', values: col('done'), kind: 'bar' }, { name: 'error', cls: 'c-error', values: col('error'), kind: 'bar' }, { name: 'canceled', cls: 'c-canceled', values: col('canceled'), kind: 'bar' }], fmt: compact, summary: `${num(t.finished)} in ${a.window} · ${a.step_ms / 60000} min buckets` });
    rqCharts.chart($('chart-failure'), { label: 'failure rate', at, series: [{ name: 'failed', cls: 'c-error', values: failure, kind: 'line' }], fmt: pct, max: Math.max(0.1, rqCharts.niceMax(Math.max(0, ...failure.filter((v) => v != null)))), summary: `${pct(t.failure_rate)} overall` });
    rqCharts.chart($('chart-wait'), { label: 'wait time', at, series: [{ name: 'p50', cls: 'c-p50', values: col('wait_p50_ms'), kind: 'line' }, { name: 'p90', cls: 'c-p90', values: col('wait_p90_ms'), kind: 'line' }], fmt: dur, floor: 100, summary: `p99 ${span(t.wait_ms.p99)}` });
    rqCharts.chart($('chart-run'), { label: 'run time', at, series: [{ name: 'p50', cls: 'c-p50', values: col('run_p50_ms'), kind: 'line' }, { name: 'p90', cls: 'c-p90', values: col('run_p90_ms'), kind: 'line' }], fmt: dur, floor: 100, summary: `p99 ${span(t.run_ms.p99)}` });
    rqCharts.chart($('chart-tokens'), { label: 'tokens', at, floor: 100, series: [{ name: 'prompt', cls: 'c-prompt', values: col('prompt_tokens'), kind: 'bar' }, { name: 'completion', cls: 'c-completion', values: col('completion_tokens'), kind: 'bar' }], fmt: compact, summary: `${compact(t.usage.prompt_tokens + t.usage.completion_tokens)} tokens` });
  };
  draw();
  st.drawCharts = draw;
}
// Charts are drawn at their box's width: again when it changes.
let resizeTimer = 0;
new ResizeObserver(() => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => { if (st.drawCharts && !$('charts').hidden) st.drawCharts(); }, 120); }).observe($('charts'));

// ---- the clock: durations that grow and "ago" texts, rewritten once a second from the page's own data (no request)
setInterval(() => {
  for (const el of document.querySelectorAll('[data-since]')) el.textContent = span(Date.now() - ms(el.dataset.since));
  for (const el of document.querySelectorAll('[data-ago]')) el.textContent = ago(el.dataset.ago);
}, 1000);

// ---- job detail: GET it, and follow its event stream (SSE); a lifecycle event re-GETs the job
const LIFECYCLE = { queued: 'queued', started: 'processing', retry: 'delayed', cancel_requested: 'canceled', canceled: 'canceled', done: 'done', error: 'error', trimmed: 'delayed' };
/** What the page holds of a stream: entries (event lines and text blocks) and characters per text block. */
const STREAM_MAX = 5000;
const TEXT_MAX = 100_000;
/** A fresh stream view for job `id`: `last` is the id of the newest event shown (a reopen resumes after it). */
function newStream(id) {
  return { id, last: 0, count: 0, dropped: 0, ended: false, opening: false, fails: 0, retryAt: 0, blocks: new Map(), follow: true, frame: 0 };
}
function openJob(id) {
  closeSSE(); st.sel = id; st.job = null; st.stream = newStream(id); delete st.seen.detail; delete st.seen.jobs;
  history.replaceState(null, '', `#job=${enc(id)}`);
  $('detail').hidden = false; $('action-msg').textContent = ''; put($('detail-body'), h('p', { class: 'muted' }, 'loading…'));
  put($('detail-payload')); put($('stream')); $('stream-note').hidden = true; $('stream-info').textContent = ''; $('detail-stream').hidden = true;
  $('detail').scrollIntoView({ block: 'nearest' });
  void loadDetail(); reloadLists();
}
$('btn-close').addEventListener('click', () => { closeSSE(); st.sel = null; st.job = null; st.stream = null; $('detail').hidden = true; history.replaceState(null, '', '#'); delete st.seen.jobs; reloadLists(); });
$('stream').addEventListener('scroll', () => { const b = $('stream'); if (st.stream) st.stream.follow = b.scrollTop + b.clientHeight >= b.scrollHeight - 24; });
function closeSSE() { if (st.es) st.es.close(); st.es = null; $('live').textContent = ''; }

/** GET the job and show it, unless a later GET (or an action's answer) was shown already. */
async function fetchJob(id) {
  const seq = ++st.jobSeq;
  const { job } = await api(`/v1/jobs/${enc(id)}`);
  if (st.sel === id && seq > st.shownSeq) { st.shownSeq = seq; renderDetail(job); }
  return job;
}
/** Re-GET the open job in `ms` (0: now); calls meanwhile share it. */
function refetchJob(ms) {
  if (st.fetchTimer) { if (ms > 0) return; clearTimeout(st.fetchTimer); }
  st.fetchTimer = setTimeout(() => { st.fetchTimer = 0; if (st.sel) fetchJob(st.sel).catch(() => { /* the next change reads it again */ }); }, ms);
}

async function openSSE(id) {
  const s = st.stream;
  if (!s || s.id !== id || st.es || s.opening || s.ended) return;
  s.opening = true;
  try {
    // A reopen first asks whether anything is left: a finished stream that was read to its end answers 204, which EventSource reports as an error.
    if (s.last > 0 || s.fails > 0) {
      const page = await api(`/v1/jobs/${enc(id)}/events?format=json&after=${s.last}&limit=1`);
      if (page.end && page.events.length === 0) { s.ended = true; return; }
    }
    // EventSource sends the cookie but no header: a one-job ticket (a minute, useless without the cookie) stands in for the secret.
    const q = new URLSearchParams();
    if (st.session) { const { ticket } = await api(`/v1/jobs/${enc(id)}/events/ticket`, 'POST'); if (ticket) q.set('ticket', ticket); }
    if (st.stream !== s || st.es || st.locked) return;
    // EventSource's own reconnects send Last-Event-ID; this one is new, so it says where to resume.
    if (s.last > 0) q.set('after', String(s.last));
    const qs = String(q);
    const es = new EventSource(`/v1/jobs/${enc(id)}/events${qs ? `?${qs}` : ''}`);
    st.es = es;
    es.onopen = () => { if (st.es === es) { $('live').textContent = '● live'; s.fails = 0; } };
    es.onmessage = (e) => {
      if (st.es !== es) return;
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      showEvent(s, ev);
    };
    // The job's final event went out: close, or EventSource would reconnect.
    es.addEventListener('end', () => { if (st.es !== es) return; s.ended = true; closeSSE(); refetchJob(0); });
    // A broken stream: it reopens after the last event shown, 1 s, 2 s … 10 s later.
    es.onerror = () => { if (st.es !== es) return; closeSSE(); streamFailed(s); };
  } catch { streamFailed(s); } // opened again a little later
  finally { s.opening = false; }
}
function streamFailed(s) {
  s.fails += 1; s.retryAt = Date.now() + Math.min(1000 * s.fails, 10_000);
  setTimeout(() => { if (st.stream === s && !st.es) loadDetail().catch(() => { /* shown by loadDetail */ }); }, s.retryAt - Date.now());
}

async function loadDetail() {
  const id = st.sel;
  if (!id) return;
  let job;
  try { job = await fetchJob(id); }
  catch (e) {
    if (e.status === 404 && st.sel === id) {
      closeSSE(); if (st.stream) st.stream.ended = true;
      put($('detail-body'), h('p', { class: 'errbox' }, `Job ${id} not found (deleted by retention?).`)); put($('detail-payload')); setButtons(null); return;
    }
    if (st.sel === id) { const msg = $('action-msg'); msg.className = 'err'; msg.textContent = `could not read the job — ${e.code}: ${e.message}`; }
    return;
  }
  const s = st.stream;
  if (st.sel !== id || !s || s.id !== id || st.es) return;
  // A finished stream goes on when the job is retried (here or elsewhere).
  if (s.ended && !TERMINAL.includes(job.status)) { s.ended = false; s.retryAt = 0; }
  if (!s.ended && Date.now() >= s.retryAt) void openSSE(id);
  else if (!s.ended) setTimeout(() => { if (st.stream === s && !st.es) void loadDetail(); }, s.retryAt - Date.now());
}

// ---- the stream: tokens grow one text block per attempt, other events are one line each
const str = (v) => (v == null ? '' : typeof v === 'string' ? v : JSON.stringify(v));
const cut = (v, n = 240) => { const t = str(v); return t.length > n ? `${t.slice(0, n)}…` : t; };
const errText = (e) => (e && typeof e === 'object' ? `${str(e.code)}: ${str(e.message)}` : str(e));
function summary(ev) {
  const d = ev.data && typeof ev.data === 'object' ? ev.data : {};
  switch (ev.type) {
    case 'queued': return d.retried ? 'queued again (retried)' : '';
    case 'started': return `attempt ${ev.attempt} on ${str(d.worker) || '?'}`;
    case 'retry': return `attempt ${ev.attempt} ${str(d.reason)}${d.error ? ` (${errText(d.error)})` : ''}, runs again ${d.run_at ? clock(d.run_at, true) : 'now'}`;
    case 'cancel_requested': case 'canceled': return str(d.reason);
    case 'done': return `attempt ${ev.attempt}${d.action ? `: ${str(d.action)}${d.tool_name ? ` ${str(d.tool_name)}` : ''}` : ''}`;
    case 'error': return `attempt ${ev.attempt}: ${errText(ev.data)}`;
    case 'trimmed': return `${str(d.dropped)} earlier events were dropped by the store`;
    case 'thinking': return d.stage !== undefined ? str(d.stage) : cut(ev.data);
    case 'tool_call': return `${d.name ? `${str(d.name)} ` : ''}#${str(d.index)} ${cut(d.arguments)}`;
    case 'usage': return `${str(d.prompt_tokens)} prompt + ${str(d.completion_tokens)} completion tokens`;
    default: return cut(ev.data);
  }
}
/** Add an entry to the stream box, dropping the oldest past STREAM_MAX. */
function addEntry(s, el, n) {
  const box = $('stream');
  el.rqEvents = n;
  box.append(el);
  while (box.childElementCount > STREAM_MAX) { s.dropped += box.firstElementChild.rqEvents || 0; box.firstElementChild.remove(); }
}
function showEvent(s, ev) {
  if (!ev || typeof ev.id !== 'number' || ev.id <= s.last) return; // nothing twice
  s.last = ev.id; s.count += 1;
  $('detail-stream').hidden = false;
  if (ev.type === 'token') {
    const text = ev.data && typeof ev.data.text === 'string' ? ev.data.text : str(ev.data);
    let b = s.blocks.get(ev.attempt);
    if (!b || !b.el.isConnected) {
      b = { node: document.createTextNode(''), el: null };
      b.el = h('div', { class: 'tokens', 'data-testid': 'stream-text', 'data-attempt': ev.attempt }, h('span', { class: 'tag' }, `attempt ${ev.attempt}`), h('span', { class: 'text' }, b.node));
      s.blocks.set(ev.attempt, b);
      addEntry(s, b.el, 0);
    }
    b.node.appendData(text); b.el.rqEvents += 1;
    // A long run's text keeps its newest part.
    if (b.node.length > TEXT_MAX) { b.node.deleteData(0, b.node.length - Math.floor(TEXT_MAX * 0.9)); b.el.classList.add('cut'); }
  } else {
    const sum = summary(ev);
    const c = LIFECYCLE[ev.type];
    addEntry(s, h('div', { class: c ? `ev s-${c}` : 'ev', 'data-testid': 'stream-event', 'data-type': ev.type, 'data-id': ev.id, title: sum || null },
      h('span', { class: 'mono muted' }, clock(ev.at, true)),
      c ? h('span', { class: `badge s-${c}` }, ev.type) : h('b', { class: 'mono' }, ev.type),
      h('span', { class: 'sum' }, sum)), 1);
    if (c && ev.type !== 'trimmed') refetchJob(0);
    else if (ev.type === 'progress' || ev.type === 'usage') refetchJob(500);
  }
  // Counters and scrolling once a frame, however many events came.
  if (!s.frame) s.frame = requestAnimationFrame(() => {
    s.frame = 0;
    if (st.stream !== s) return;
    $('stream-info').textContent = `${s.count} event${s.count === 1 ? '' : 's'}`;
    const note = $('stream-note');
    note.hidden = s.dropped === 0; note.textContent = `… ${s.dropped} earlier events not shown`;
    if (s.follow) { const box = $('stream'); box.scrollTop = box.scrollHeight; }
  });
}
function setButtons(j) {
  const cancelable = !!j && (j.status === 'queued' || (j.status === 'processing' && !j.cancel_requested));
  $('btn-cancel').disabled = !cancelable;
  $('btn-cancel').textContent = j && j.status === 'processing' && j.cancel_requested ? 'Canceling…' : 'Cancel';
  $('btn-retry').disabled = !j || !(j.status === 'error' || j.status === 'canceled');
}
function timeline(j) {
  const t0 = new Date(j.created_at).getTime();
  const ev = [{ at: j.created_at, label: 'created', c: 'queued' }];
  if (j.run_at && new Date(j.run_at).getTime() - t0 > 5) ev.push({ at: j.run_at, label: j.status === 'queued' ? 'due to run' : 'became due', c: 'delayed' });
  if (j.started_at) ev.push({ at: j.started_at, label: `started attempt ${j.attempts}${j.lease ? ` on ${j.lease.owner}` : ''}`, c: 'processing' });
  if (j.cancel_requested) ev.push({ at: j.cancel_requested.at, label: `cancel requested: ${j.cancel_requested.reason}`, c: 'canceled' });
  if (j.finished_at) ev.push({ at: j.finished_at, label: `finished ${j.status}`, c: j.status });
  ev.sort((a, b) => new Date(a.at).getTime() - new Date(b.at).getTime());
  return h('ol', { class: 'timeline', 'data-testid': 'detail-timeline' }, ev.map((e) => h('li', { class: `s-${e.c}`, 'data-event': e.label.split(' ')[0] },
    h('span', { class: 'mono' }, clock(e.at, true)), ' ', e.label, ' ', h('span', { class: 'muted' }, `+${span(new Date(e.at).getTime() - t0)}`))));
}
/** What becomes of a job's error: only a queued job with an error will run again. */
function errorFate(j) {
  if (j.status === 'queued') return `— will retry: attempt ${j.attempts + 1} of ${j.max_attempts}${ms(j.run_at) > Date.now() ? ` at ${clock(j.run_at)}` : ''}`;
  if (j.status === 'processing') return `— from attempt ${j.attempts - 1}; attempt ${j.attempts} of ${j.max_attempts} is running`;
  if (j.status === 'error') return j.error.retryable && j.attempts >= j.max_attempts ? `— final: all ${j.max_attempts} attempts used` : '— final: not retryable';
  return `— ${j.status}`;
}
const END_CLASS = { done: 'done', error: 'error', retry: 'delayed', canceled: 'canceled', released: 'queued', stalled: 'delayed' };
/** One row per attempt from `runs` (kept across retries), and the attempt running now. */
function runsTable(j) {
  const runs = Array.isArray(j.runs) ? [...j.runs] : null;
  if (!runs) return h('p', { class: 'muted', 'data-testid': 'runs-missing' }, `${j.attempts} attempt${j.attempts === 1 ? '' : 's'}; this server keeps no per-attempt history (no \`runs\` field).`);
  const open = j.status === 'processing' && j.started_at && !runs.some((r) => r.attempt === j.attempts && !r.ended_at);
  if (open) runs.push({ attempt: j.attempts, worker: j.lease ? j.lease.owner : null, started_at: j.started_at, ended_at: null, end: null, error: null });
  if (!runs.length) return h('p', { class: 'muted' }, 'not started yet');
  return h('div', { class: 'scroll' }, h('table', { class: 'runs', 'data-testid': 'runs' },
    h('thead', null, h('tr', null, h('th', { class: 'num' }, '#'), h('th', null, 'worker'), h('th', null, 'start'), h('th', null, 'end'), h('th', { class: 'num' }, 'took'), h('th', null, 'outcome'), h('th', null, 'error'))),
    h('tbody', null, runs.map((r) => h('tr', { 'data-attempt': r.attempt, 'data-end': r.end || 'running' },
      h('td', { class: 'num' }, r.attempt), h('td', { class: 'mono wid', title: r.worker || '' }, r.worker || '—'),
      h('td', { class: 'mono' }, clock(r.started_at, true)), h('td', { class: 'mono' }, r.ended_at ? clock(r.ended_at, true) : '—'),
      h('td', { class: 'num dur' }, r.ended_at ? span(ms(r.ended_at) - ms(r.started_at)) : since(r.started_at)),
      h('td', null, r.end ? h('span', { class: `badge s-${END_CLASS[r.end] || 'queued'}` }, r.end) : h('span', { class: 'badge s-processing' }, j.stalled ? 'stalled' : 'running')),
      h('td', { class: 'run-err', 'data-testid': 'run-error', title: r.error ? `${r.error.code}: ${r.error.message}` : '' }, r.error ? [h('b', { class: 'mono' }, r.error.code), ' ', r.error.message] : ''))))));
}
function callbackLog(j) {
  const c = j.callback;
  const kv = (k, v) => [h('dt', null, k), h('dd', null, v)];
  return h('dl', { class: 'kv', 'data-testid': 'detail-callback-log' },
    kv('state', h('span', { class: `badge s-${c.state === 'delivered' ? 'done' : c.state === 'failed' ? 'error' : 'delayed'}` }, c.state)),
    kv('tries', String(c.attempts)),
    c.last_status != null || c.last_error ? kv('last answer', `${c.last_status ?? 'no answer'}${c.last_error ? ` · ${c.last_error}` : ''}`) : null,
    c.next_at && c.state === 'pending' ? kv('next try', clock(c.next_at)) : null,
    c.delivered_at ? kv('delivered', `${clock(c.delivered_at, true)} · ${ago(c.delivered_at)}`) : null,
    c.delivery_id ? kv('webhook-id', h('span', { class: 'mono' }, c.delivery_id)) : null);
}
function renderDetail(j) {
  st.job = j; setButtons(j);
  // A callback still being delivered changes no count and no event: read the job again just after its next try.
  clearTimeout(st.callbackTimer);
  if (j.callback && j.callback.state === 'pending') {
    const due = j.callback.next_at ? ms(j.callback.next_at) - Date.now() + 300 : 1000;
    st.callbackTimer = setTimeout(() => { if (st.sel === j.id) refetchJob(0); }, Math.max(500, due));
  }
  if (same('detail', j)) return;
  const kv = (k, v, tid) => [h('dt', null, k), h('dd', { 'data-testid': tid }, v)];
  put($('detail-body'),
    h('div', { id: 'detail-title' }, h('span', { class: 'mono', 'data-testid': 'detail-id' }, j.id), ' ', h('span', { 'data-testid': 'detail-status' }, badge(j.status))),
    h('dl', { class: 'kv' },
      kv('queue', h('span', { class: 'mono' }, j.queue), 'detail-queue'),
      kv('attempts', `${j.attempts} of ${j.max_attempts}`, 'detail-attempts'),
      kv('stalls', [`${j.stalls} of ${j.max_stalls}`, j.stalled ? h('span', { class: 'flag warn', 'data-testid': 'stalled' }, 'stalled now: the lease ran out, waiting to be requeued') : null], 'detail-stalls'),
      kv('priority', j.priority, 'detail-priority'),
      kv('lease', j.lease ? `${j.lease.owner} · until ${clock(j.lease.until, true)}` : '—', 'detail-lease'),
      kv('progress', j.progress == null ? '—' : h('span', { class: 'mono' }, JSON.stringify(j.progress)), 'detail-progress'),
      kv('wait / run', `${span(waitMs(j))} / ${j.status === 'processing' && j.started_at ? span(runMs(j)) + ' so far' : span(runMs(j))}`, 'detail-durations'),
      j.usage ? kv('usage', `${j.usage.prompt_tokens} prompt + ${j.usage.completion_tokens} completion tokens`, 'detail-usage') : null,
      j.timeout_ms ? kv('timeout', span(j.timeout_ms), 'detail-timeout') : null,
      j.dedupe_key ? kv('dedupe key', j.dedupe_key, 'detail-dedupe') : null,
      j.callback_url ? kv('callback', j.callback_url, 'detail-callback') : null),
    h('h3', null, 'Timeline'), timeline(j),
    j.error ? [h('h3', null, j.status === 'queued' || j.status === 'processing' ? 'Last error' : 'Error'), h('div', { class: 'errbox', 'data-testid': 'detail-error' },
      h('b', { class: 'mono' }, j.error.code), ': ', j.error.message, ' ', h('span', { class: 'fate', 'data-testid': 'error-fate' }, errorFate(j)))] : null,
    h('h3', null, 'Attempts'), runsTable(j),
    j.callback ? [h('h3', null, 'Callback'), callbackLog(j)] : null,
    j.result ? [h('h3', null, 'Result'), h('pre', { 'data-testid': 'detail-result' }, json(j.result))] : null);
  put($('detail-payload'), h('h3', null, 'Payload'), h('pre', { 'data-testid': 'detail-payload' }, json(j.payload)));
}
async function act(kind) {
  const id = st.sel;
  if (!id) return;
  const msg = $('action-msg');
  $(`btn-${kind}`).disabled = true; msg.className = ''; msg.textContent = '';
  try {
    const { job } = await api(`/v1/jobs/${enc(id)}/${kind}`, 'POST', kind === 'cancel' ? { reason: 'canceled from the dashboard' } : {});
    msg.className = 'ok';
    msg.textContent = kind === 'retry' ? 'Requeued.' : job.status === 'canceled' ? 'Canceled.' : job.cancel_requested ? 'Cancel requested; the worker stops it at its next lease renewal.' : `Job is ${job.status}.`;
    if (st.sel !== id) return;
    // The open stream reports what follows; a retried job's stream goes on after its end.
    if (kind === 'retry' && st.stream && st.stream.id === id) { st.stream.ended = false; st.stream.retryAt = 0; }
    st.shownSeq = ++st.jobSeq; renderDetail(job); reloadLists();
    if (!st.es) void loadDetail();
  } catch (e) {
    msg.className = 'err';
    msg.textContent = `${kind} failed — ${e.code}${e.status ? ` (HTTP ${e.status})` : ''}: ${e.message}`;
    setButtons(st.job);
  }
}
$('btn-cancel').addEventListener('click', () => act('cancel'));
$('btn-retry').addEventListener('click', () => act('retry'));

/** Open the push, read the lists and the analytics once; from here on the push says when to read again. */
function start() {
  if (st.locked) return;
  void openFeed(); reloadLists(); void loadAnalytics();
  if (st.sel) void loadDetail();
}
const m = /^#job=(.+)$/.exec(location.hash);
// A cookie without this tab's secret (a new tab) is no session here: the page asks to sign in.
api('/v1/session').then((s) => {
  st.session = Boolean(s && s.signed_in && st.csrf);
  // With tokens configured and no session here, ask for the token before anything else.
  if (s && s.auth_required && !st.session) lock();
}, () => {})
  .finally(() => { if (m && !st.locked) openJob(decodeURIComponent(m[1])); start(); });
