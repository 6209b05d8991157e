'use strict';
// Everything rendered goes through h(): text nodes and setAttribute only, never innerHTML (payloads are user input).
const $ = (id) => document.getElementById(id);
const COUNTS = ['queued', 'delayed', 'processing', 'done', 'error', 'canceled'];
const TERMINAL = ['done', 'error', 'canceled'];
const PAGE = 15;
// The token is never kept by the page: signing in trades it for an HttpOnly session cookie (POST /v1/session)
// and the session's secret, kept in sessionStorage (this origin, this tab) and sent as x-reasonq-csrf.
const CSRF_KEY = 'reasonq.csrf';
const st = { session: false, csrf: sessionStorage.getItem(CSRF_KEY) || '', locked: false, status: '', queue: '', cursors: [null], page: 0, next: null, sel: null, job: null, es: null, gen: 0, seen: {} };

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

// ---- job detail: GET once, then SSE while it is not finished
function openJob(id) {
  closeSSE(); st.sel = id; st.job = null; delete st.seen.detail; delete st.seen.jobs;
  history.replaceState(null, '', `#job=${enc(id)}`);
  $('detail').hidden = false; $('action-msg').textContent = ''; put($('detail-body'), h('p', { class: 'muted' }, 'loading…'));
  $('detail').scrollIntoView({ block: 'nearest' });
  refresh();
}
$('btn-close').addEventListener('click', () => { closeSSE(); st.sel = null; st.job = null; $('detail').hidden = true; history.replaceState(null, '', '#'); delete st.seen.jobs; refresh(); });
function closeSSE() { if (st.es) st.es.close(); st.es = null; $('live').textContent = ''; }
async function openSSE(id) {
  closeSSE();
  // EventSource sends the cookie but no header: a one-job ticket (a minute, useless without the cookie) stands in for the secret.
  let url = `/v1/jobs/${enc(id)}/events`;
  if (st.session) {
    try { const { ticket } = await api(`/v1/jobs/${enc(id)}/events/ticket`, 'POST'); if (ticket) url += `?ticket=${enc(ticket)}`; }
    catch { return; } // polling goes on and opens the stream again
    if (st.sel !== id || st.es) return;
  }
  const es = new EventSource(url);
  st.es = es;
  es.onopen = () => { if (st.es === es) $('live').textContent = '● live'; };
  es.addEventListener('job', (e) => {
    const job = JSON.parse(e.data);
    if (st.es !== es || job.id !== st.sel) return;
    renderDetail(job);
    if (TERMINAL.includes(job.status)) closeSSE();
  });
  // The stream ends when the job does; a broken one falls back to polling, which reopens it.
  es.onerror = () => { if (st.es === es) closeSSE(); };
}
async function loadDetail() {
  const id = st.sel;
  if (!id || st.es) return;
  let job;
  try { ({ job } = await api(`/v1/jobs/${enc(id)}`)); }
  catch (e) { if (e.status === 404 && st.sel === id) { put($('detail-body'), h('p', { class: 'errbox' }, `Job ${id} not found (deleted by retention?).`)); setButtons(null); return; } throw e; }
  if (st.sel !== id) return;
  renderDetail(job);
  if (!TERMINAL.includes(job.status) && !st.es) void openSSE(id);
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
      j.timeout_ms ? kv('timeout', span(j.timeout_ms), 'detail-timeout') : null,
      j.dedupe_key ? kv('dedupe key', j.dedupe_key, 'detail-dedupe') : null,
      j.callback_url ? kv('callback', j.callback_url, 'detail-callback') : null),
    h('h3', null, 'Timeline'), timeline(j),
    j.error ? [h('h3', null, 'Error'), h('div', { class: 'errbox', 'data-testid': 'detail-error' },
      h('b', { class: 'mono' }, j.error.code), ': ', j.error.message, j.error.retryable ? ' (retryable)' : ' (not retryable)')] : null,
    j.result ? [h('h3', null, 'Result'), h('pre', { 'data-testid': 'detail-result' }, json(j.result))] : null,
    h('h3', null, 'Payload'), h('pre', { 'data-testid': 'detail-payload' }, json(j.payload)));
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
    closeSSE(); delete st.seen.detail; renderDetail(job); refresh();
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
