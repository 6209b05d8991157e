'use strict';
// Everything rendered goes through h(): text nodes and setAttribute only, never innerHTML (payloads are user input).
const $ = (id) => document.getElementById(id);
const COUNTS = ['queued', 'delayed', 'processing', 'done', 'error', 'canceled'];
const TERMINAL = ['done', 'error', 'canceled', 'moved'];
const PAGE = 15;
// The token is never kept by the page: signing in trades it for an HttpOnly session cookie (POST /v1/session)
// and the session's secret, kept in sessionStorage (this origin, this tab) and sent as x-reasonq-csrf.
const CSRF_KEY = 'reasonq.csrf';
const st = { session: false, csrf: sessionStorage.getItem(CSRF_KEY) || '', locked: false, status: '', queue: '', cursors: [null], page: 0, next: null, sel: null, job: null, es: null, gen: 0, seen: {},
  stream: null, jobSeq: 0, shownSeq: 0, detailAt: 0, fetchTimer: 0 };

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
function clock(v, ms) { if (!v) return '—'; const d = new Date(v); return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}${ms ? '.' + pad(d.getMilliseconds(), 3) : ''}`; }
function ago(v) { const s = Math.max(0, Math.round((Date.now() - new Date(v).getTime()) / 1000)); return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.floor(s / 60)}m ago` : `${Math.floor(s / 3600)}h ago`; }
function span(ms) { return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60000)}m ${Math.round((ms % 60000) / 1000)}s`; }
const json = (v) => JSON.stringify(v, null, 2);
const goal = (j) => (j.payload && typeof j.payload.goal === 'string' ? j.payload.goal : j.payload ? JSON.stringify(j.payload) : '');

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
  st.locked = true; closeSSE();
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
function unlock() { st.locked = false; st.seen = {}; document.body.classList.remove('locked'); $('auth').hidden = true; refresh(); }
function setConn(cls, text) { const c = $('conn'); c.className = cls; c.textContent = text; $('token-forget').hidden = !st.session; }

// ---- polling: one refresh at a time, every second
let timer = 0, busy = false, again = false;
async function refresh() {
  clearTimeout(timer);
  if (busy) { again = true; return; }
  busy = true;
  try {
    if (!st.locked) {
      const r = await Promise.allSettled([loadStats(), loadWorkers(), loadLists(), loadJobs(), loadDetail()]);
      const bad = r.find((x) => x.status === 'rejected');
      if (st.locked) { /* lock() set the header */ }
      else if (bad) setConn('down', `${bad.reason.code || 'ERROR'}: ${bad.reason.message}`);
      else setConn('live', `live · ${clock(Date.now())}`);
    }
  } finally { busy = false; }
  if (again) { again = false; return refresh(); }
  timer = setTimeout(refresh, 1000);
}

async function loadStats() {
  const stats = await api('/v1/stats');
  if (same('stats', stats)) return;
  put($('totals'), COUNTS.map((s) => h('div', { class: `total s-${s}`, 'data-testid': `total-${s}` },
    h('b', null, stats.totals[s]), h('span', null, s === 'processing' ? 'running' : s))));
  const names = Object.keys(stats.queues).sort();
  put($('queues').tBodies[0], names.length ? names.map((q) => h('tr', { class: 'click', 'data-queue': q, title: `show jobs of ${q}`, onclick: () => setFilter(st.status, q) },
    h('td', { class: 'mono' }, q),
    COUNTS.map((s) => h('td', { class: stats.queues[q][s] ? 'num' : 'num zero', 'data-status': s }, stats.queues[q][s]))))
    : h('tr', null, h('td', { class: 'empty', colspan: 7 }, 'no jobs yet')));
  const sel = $('filter-queue');
  const opts = [...new Set([...names, st.queue].filter(Boolean))].sort();
  put(sel, h('option', { value: '' }, 'all queues'), opts.map((q) => h('option', { value: q }, q)));
  sel.value = st.queue;
}

async function loadWorkers() {
  const { workers } = await api('/v1/workers');
  workers.sort((a, b) => Number(b.alive) - Number(a.alive) || a.id.localeCompare(b.id));
  $('workers-n').textContent = workers.filter((w) => w.alive).length;
  put($('workers').tBodies[0], workers.length ? workers.map((w) => h('tr', { 'data-worker-id': w.id, 'data-alive': String(w.alive) },
    h('td', { class: 'mono wid', title: `${w.id} · ${w.host} pid ${w.pid}` }, w.id),
    h('td', null, h('span', { class: `badge s-${w.alive ? 'alive' : 'dead'}`, 'data-testid': 'worker-state' }, w.alive ? 'alive' : 'dead')),
    h('td', { class: 'mono wq', title: w.queues.join(', ') }, w.queues.join(', ')),
    h('td', { class: 'num', title: w.alive ? '' : 'what it last reported before it stopped answering' }, w.alive ? `${w.running}/${w.concurrency}` : `${w.running}/${w.concurrency} (stale)`),
    h('td', { class: 'num' }, `${w.processed} / ${w.failed}`),
    h('td', { class: 'muted' }, ago(w.last_seen))))
    : h('tr', null, h('td', { class: 'empty', colspan: 6 }, 'no workers registered')));
}

function jobItem(j, extra, withId) {
  return h('li', { 'data-job-id': j.id, 'data-status': j.status, title: `${j.id}\n${goal(j)}`, onclick: () => openJob(j.id) },
    badge(j.status), withId ? h('span', { class: 'mono' }, shortId(j.id)) : null, h('span', { class: 'grow' }, goal(j)), h('span', { class: 'muted' }, extra));
}
async function loadLists() {
  const [run, done, failed] = await Promise.all(['processing&limit=10', 'done&limit=6', 'error&limit=6'].map((q) => api(`/v1/jobs?status=${q}`)));
  $('running-n').textContent = run.jobs.length + (run.next_cursor ? '+' : '');
  const fill = (id, jobs, extra, none) => { if (!same(id, jobs)) put($(id), jobs.length ? jobs.map((j) => jobItem(j, extra(j), id === 'running')) : h('li', { class: 'empty' }, none)); };
  fill('running', run.jobs, (j) => `${j.stalled ? 'STALLED: lease ran out, waiting to be requeued · ' : ''}try ${j.attempts}${j.stalls ? ` · ${j.stalls} stall${j.stalls > 1 ? 's' : ''}` : ''} · since ${clock(j.started_at)} · ${j.lease ? j.lease.owner : ''}`, 'nothing running');
  fill('recent-done', done.jobs, (j) => clock(j.finished_at), 'none yet');
  fill('recent-failed', failed.jobs, (j) => (j.error ? j.error.code : ''), 'none');
}

// ---- job list with filters and cursor paging
function setFilter(status, queue) {
  st.status = status; st.queue = queue; st.cursors = [null]; st.page = 0; st.next = null; st.gen += 1;
  $('filter-status').value = status; $('page-next').disabled = true; $('page-prev').disabled = true; refresh();
}
$('filter-status').addEventListener('change', (e) => setFilter(e.target.value, st.queue));
$('filter-queue').addEventListener('change', (e) => setFilter(st.status, e.target.value));
// A cursor belongs to the filter and page it came from; moving invalidates pages still loading.
$('page-next').addEventListener('click', () => { if (!st.next) return; st.cursors[st.page + 1] = st.next; st.page += 1; st.next = null; st.gen += 1; refresh(); });
$('page-prev').addEventListener('click', () => { if (st.page === 0) return; st.page -= 1; st.next = null; st.gen += 1; refresh(); });
async function loadJobs() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (st.status) q.set('status', st.status);
  if (st.queue) q.set('queue', st.queue);
  if (st.cursors[st.page]) q.set('cursor', st.cursors[st.page]);
  const gen = st.gen;
  const page = await api(`/v1/jobs?${q}`);
  if (gen !== st.gen) return;
  st.next = page.next_cursor;
  $('page-prev').disabled = st.page === 0; $('page-next').disabled = !st.next; $('page-info').textContent = `page ${st.page + 1}`;
  if (same('jobs', [page.jobs, st.sel])) return;
  put($('jobs').tBodies[0], page.jobs.length ? page.jobs.map((j) => h('tr', { class: j.id === st.sel ? 'click sel' : 'click', 'data-job-id': j.id, 'data-status': j.status, onclick: () => openJob(j.id) },
    h('td', { class: 'mono', title: j.id }, shortId(j.id)), h('td', { class: 'mono' }, j.queue), h('td', null, badge(j.status)),
    h('td', { class: 'num' }, `${j.attempts}/${j.max_attempts}`), h('td', { title: goal(j) }, goal(j)), h('td', { class: 'muted' }, clock(j.created_at))))
    : h('tr', null, h('td', { class: 'empty', colspan: 6 }, 'no jobs match')));
}

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
  closeSSE(); st.sel = id; st.job = null; st.stream = newStream(id); st.detailAt = 0; delete st.seen.detail; delete st.seen.jobs;
  history.replaceState(null, '', `#job=${enc(id)}`);
  $('detail').hidden = false; $('action-msg').textContent = ''; put($('detail-body'), h('p', { class: 'muted' }, 'loading…'));
  put($('detail-payload')); put($('stream')); $('stream-note').hidden = true; $('stream-info').textContent = ''; $('detail-stream').hidden = true;
  $('detail').scrollIntoView({ block: 'nearest' });
  refresh();
}
$('btn-close').addEventListener('click', () => { closeSSE(); st.sel = null; st.job = null; st.stream = null; $('detail').hidden = true; history.replaceState(null, '', '#'); delete st.seen.jobs; refresh(); });
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
  st.fetchTimer = setTimeout(() => { st.fetchTimer = 0; if (st.sel) fetchJob(st.sel).catch(() => { /* polling reports it */ }); }, ms);
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
    // A broken stream: polling takes over and reopens it after the last event shown.
    es.onerror = () => { if (st.es !== es) return; closeSSE(); streamFailed(s); st.detailAt = 0; };
  } catch { streamFailed(s); } // polling goes on and opens the stream again
  finally { s.opening = false; }
}
function streamFailed(s) { s.fails += 1; s.retryAt = Date.now() + Math.min(1000 * s.fails, 10_000); }

async function loadDetail() {
  const id = st.sel;
  if (!id) return;
  // While the stream is open it pushes the changes; a slower poll still catches lease renewals and stalls.
  if (st.es && Date.now() - st.detailAt < 5000) return;
  st.detailAt = Date.now();
  let job;
  try { job = await fetchJob(id); }
  catch (e) {
    if (e.status === 404 && st.sel === id) {
      closeSSE(); if (st.stream) st.stream.ended = true;
      put($('detail-body'), h('p', { class: 'errbox' }, `Job ${id} not found (deleted by retention?).`)); put($('detail-payload')); setButtons(null); return;
    }
    throw e;
  }
  const s = st.stream;
  if (st.sel !== id || !s || s.id !== id || st.es) return;
  // A finished stream goes on when the job is retried (here or elsewhere).
  if (s.ended && !TERMINAL.includes(job.status)) { s.ended = false; s.retryAt = 0; }
  if (!s.ended && Date.now() >= s.retryAt) void openSSE(id);
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
function renderDetail(j) {
  st.job = j; setButtons(j);
  if (same('detail', j)) return;
  const kv = (k, v, tid) => [h('dt', null, k), h('dd', { 'data-testid': tid }, v)];
  put($('detail-body'),
    h('div', { id: 'detail-title' }, h('span', { class: 'mono', 'data-testid': 'detail-id' }, j.id), ' ', h('span', { 'data-testid': 'detail-status' }, badge(j.status))),
    h('dl', { class: 'kv' },
      kv('queue', h('span', { class: 'mono' }, j.queue), 'detail-queue'),
      kv('attempts', `${j.attempts} of ${j.max_attempts}`, 'detail-attempts'),
      kv('stalls', `${j.stalls} of ${j.max_stalls}${j.stalled ? ' · stalled now: lease ran out, waiting to be requeued' : ''}`, 'detail-stalls'),
      kv('priority', j.priority, 'detail-priority'),
      kv('lease', j.lease ? `${j.lease.owner} · until ${clock(j.lease.until, true)}` : '—', 'detail-lease'),
      kv('progress', j.progress == null ? '—' : h('span', { class: 'mono' }, JSON.stringify(j.progress)), 'detail-progress'),
      j.usage ? kv('usage', `${j.usage.prompt_tokens} prompt + ${j.usage.completion_tokens} completion tokens`, 'detail-usage') : null,
      j.timeout_ms ? kv('timeout', span(j.timeout_ms), 'detail-timeout') : null,
      j.dedupe_key ? kv('dedupe key', j.dedupe_key, 'detail-dedupe') : null,
      j.callback_url ? kv('callback', j.callback_url, 'detail-callback') : null),
    h('h3', null, 'Timeline'), timeline(j),
    j.error ? [h('h3', null, 'Error'), h('div', { class: 'errbox', 'data-testid': 'detail-error' },
      h('b', { class: 'mono' }, j.error.code), ': ', j.error.message, j.error.retryable ? ' (retryable)' : ' (not retryable)')] : null,
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
    st.shownSeq = ++st.jobSeq; st.detailAt = Date.now(); renderDetail(job); refresh();
  } catch (e) {
    msg.className = 'err';
    msg.textContent = `${kind} failed — ${e.code}${e.status ? ` (HTTP ${e.status})` : ''}: ${e.message}`;
    setButtons(st.job);
  }
}
$('btn-cancel').addEventListener('click', () => act('cancel'));
$('btn-retry').addEventListener('click', () => act('retry'));

const m = /^#job=(.+)$/.exec(location.hash);
// A cookie without this tab's secret (a new tab) is no session here: the page asks to sign in.
api('/v1/session').then((s) => { st.session = Boolean(s && s.signed_in && st.csrf); }, () => {})
  .finally(() => { if (m) openJob(decodeURIComponent(m[1])); else refresh(); });
