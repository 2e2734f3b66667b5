// wagate dashboard: plain JavaScript, no dependencies. The page holds no data of its own;
// every call carries the API key, which lives in sessionStorage only (this tab, until it
// closes or the user signs out).
'use strict';

const KEY_SLOT = 'wagate.key';
const STATE_FIELDS = ['code', 'expires_at', 'pair_code', 'since', 'attempts', 'reason', 'until', 'message'];

const $ = (sel) => document.querySelector(sel);

const app = {
  key: null,
  sessions: new Map(),
  selected: null,
  stream: null,
  live: false,
  qrCode: null,
  qrUrl: null,
  sent: new Map(), // message id -> {session, to, status, li}
  nextBefore: null,
  paged: false,
  // Counts state changes heard on the stream: an HTTP answer read before a change we already
  // applied must not put the older state back.
  seq: 0,
  timers: [],
};

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function say(text, kind) {
  const s = $('#status');
  s.textContent = text;
  s.dataset.kind = kind || 'info';
}

function fail(err) {
  if (err && err.name === 'AbortError') return;
  say(err instanceof ApiError ? `${err.message} (${err.code})` : String(err && err.message || err), 'error');
}

function when(ms) {
  if (ms === null || ms === undefined) return '';
  return new Date(ms).toLocaleString();
}

// WhatsApp shows a pairing code as two groups of four.
function pairCode(c) {
  return /^[A-Z0-9]{8}$/i.test(c) ? `${c.slice(0, 4)}-${c.slice(4)}` : c;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

async function api(method, path, body, accept) {
  const headers = { Authorization: `Bearer ${app.key}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  headers.Accept = accept || 'application/json';
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  if (!r.ok) {
    let code = 'http_' + r.status;
    let message = r.statusText || 'request failed';
    try {
      const j = await r.json();
      if (j && j.error) ({ code, message } = j.error);
    } catch (_) { /* not JSON */ }
    if (r.status === 401) signOut('The key was refused: sign in again.');
    throw new ApiError(r.status, code, message);
  }
  return r;
}

const getJson = async (path) => (await api('GET', path)).json();
const sendJson = async (method, path, body) => {
  const r = await api(method, path, body);
  return r.status === 204 ? null : r.json();
};

// ---------- sign in / out ----------

async function signIn(key) {
  app.key = key;
  // Any valid key may read the API description: it tells a good key from a bad one
  // whatever its scopes.
  await api('GET', '/api/openapi.json');
  sessionStorage.setItem(KEY_SLOT, key);
  start();
}

function signOut(why) {
  sessionStorage.removeItem(KEY_SLOT);
  app.key = null;
  if (app.stream) app.stream.abort();
  app.stream = null;
  app.timers.forEach(clearInterval);
  app.timers = [];
  app.sessions.clear();
  app.sent.clear();
  app.selected = null;
  dropQr();
  setLive(false);
  for (const id of ['#nav', '#who', '#tab-sessions', '#tab-webhooks', '#tab-deliveries']) $(id).hidden = true;
  $('#signin').hidden = false;
  $('#key').value = '';
  $('#session-list').replaceChildren();
  $('#hook-list').replaceChildren();
  $('#dlv-body').replaceChildren();
  $('#sent-list').replaceChildren();
  $('#sent-box').hidden = true;
  $('#secret').textContent = '';
  $('#secret-box').hidden = true;
  $('#detail').hidden = true;
  say(why || 'Signed out.', why ? 'error' : 'info');
  $('#key').focus();
}

function start() {
  $('#signin').hidden = true;
  $('#nav').hidden = false;
  $('#who').hidden = false;
  say('Signed in.');
  route();
  loadSessions().catch(fail);
  runStream();
  app.timers.push(setInterval(tick, 1000));
  app.timers.push(setInterval(() => {
    // Keep the log fresh, but never pull a row from under the keyboard focus.
    // Nor once older pages are shown (Refresh goes back to the newest).
    if (!$('#tab-deliveries').hidden && !app.paged && !$('#dlv-body').contains(document.activeElement)) {
      loadDeliveries(false).catch(fail);
    }
  }, 4000));
}

// ---------- tabs ----------

function route() {
  if (!app.key) return;
  const tab = (location.hash || '#sessions').slice(1).split('/')[0];
  const known = ['sessions', 'webhooks', 'deliveries'];
  const cur = known.includes(tab) ? tab : 'sessions';
  for (const t of known) {
    $('#tab-' + t).hidden = t !== cur;
    const link = document.querySelector(`nav a[data-tab="${t}"]`);
    if (t === cur) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (cur === 'webhooks') loadHooks().catch(fail);
  if (cur === 'deliveries') loadDeliveries(false).catch(fail);
}

// ---------- live stream (SSE read with fetch: EventSource cannot send a header) ----------

function setLive(on) {
  app.live = on;
  const el = $('#live');
  el.dataset.live = on ? 'on' : 'off';
  el.textContent = on ? 'live' : 'offline';
}

async function runStream() {
  const ctrl = new AbortController();
  app.stream = ctrl;
  let wait = 1000;
  while (!ctrl.signal.aborted) {
    try {
      const r = await fetch('/api/events', {
        headers: { Authorization: `Bearer ${app.key}`, Accept: 'text/event-stream' },
        signal: ctrl.signal,
        cache: 'no-store',
        credentials: 'omit',
      });
      if (r.status === 401) { signOut('The key was refused: sign in again.'); return; }
      if (r.status === 403) { say('This key may not read sessions: no live view.', 'error'); return; }
      if (!r.ok || !r.body) throw new Error('events: HTTP ' + r.status);
      setLive(true);
      wait = 1000;
      // Whatever happened while we were away: read the states afresh.
      loadSessions().catch(fail);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          onBlock(block);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    await sleep(wait);
    wait = Math.min(wait * 2, 15000);
  }
}

function onBlock(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return;
  let payload;
  try { payload = JSON.parse(data.join('\n')); } catch (_) { return; }
  onEvent(type, payload);
}

function onEvent(type, d) {
  if (type === 'state') {
    const s = app.sessions.get(d.session);
    if (!s) { loadSessions().catch(fail); return; }
    for (const f of STATE_FIELDS) delete s[f];
    Object.assign(s, d);
    delete s.session;
    s.seq = ++app.seq;
    renderSessions();
    if (app.selected === d.session) renderDetail();
  } else if (type === 'resync') {
    loadSessions().catch(fail);
  } else if (type === 'session.connected') {
    const s = app.sessions.get(d.session);
    if (s && d.data) {
      s.phone = d.data.phone || s.phone;
      s.lid = d.data.lid || s.lid;
      renderSessions();
      if (app.selected === d.session) renderDetail();
    }
    say(`Session ${d.session} connected.`);
  } else if (type.startsWith('message.') && d.data && app.sent.has(d.data.id)) {
    setSent(d.data.id, type.slice('message.'.length));
  } else if (type === 'message.received') {
    say(`Session ${d.session} received a message${d.data && d.data.text ? ': ' + d.data.text : ''}.`);
  } else if (type === 'call.received' && d.data) {
    const who = d.data.from_phone || d.data.from;
    say(`Session ${d.session}: ${d.data.offline ? 'missed ' : ''}${d.data.video ? 'video' : 'voice'} call from ${who}.`);
  } else if (type === 'call.rejected' && d.data) {
    say(`Session ${d.session} declined the call from ${d.data.from_phone || d.data.from}${d.data.reply_id ? ' and wrote to the caller' : ''}.`);
  } else if ((type === 'group.participants' || type === 'group.updated') && d.data) {
    say(`Session ${d.session}: group ${d.data.group}: ${d.data.action.replace('_', ' ')}.`);
  } else if (type === 'queue' && d.session === app.selected) {
    loadQueue().catch(fail);
  }
}

// ---------- sessions ----------

// A session as an HTTP answer showed it, unless the stream told us something newer since
// the request left (`since`: app.seq then).
function putSession(s, since) {
  const cur = app.sessions.get(s.id);
  if (cur && cur.seq > since) return;
  s.seq = since;
  app.sessions.set(s.id, s);
}

async function loadSessions() {
  const since = app.seq;
  let list;
  try {
    list = await getJson('/api/sessions');
  } catch (e) {
    if (e.status === 403) { $('#session-list').replaceChildren(h('li', { text: 'This key may not read sessions.' })); return; }
    throw e;
  }
  const old = app.sessions;
  app.sessions = new Map();
  for (const s of list) {
    const cur = old.get(s.id);
    app.sessions.set(s.id, cur && cur.seq > since ? cur : Object.assign(s, { seq: since }));
  }
  if (app.selected && !app.sessions.has(app.selected)) app.selected = null;
  renderSessions();
  renderDetail();
}

// Why a session is disconnected, in words (the API's `reason`).
const LOST = {
  no_answer: 'WhatsApp stopped answering (a dead network link)',
  connection_lost: 'the connection ended',
  connect_failed: 'cannot reach WhatsApp',
};

function stateLabel(s) {
  switch (s.state) {
    case 'qr': return 'waiting for a scan';
    case 'failed': return 'failed' + (s.reason ? ` (${s.reason})` : '');
    case 'disconnected': return 'reconnecting';
    default: return s.state;
  }
}

function renderSessions() {
  const ul = $('#session-list');
  if (!app.sessions.size) {
    ul.replaceChildren(h('li', { class: 'muted', text: 'No sessions yet: create one above.' }));
    return;
  }
  const phones = $('#known-phones');
  phones.replaceChildren();
  const items = [];
  for (const s of [...app.sessions.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    const number = s.phone ? s.phone.split('@')[0] : null;
    if (number) phones.append(h('option', { value: number, label: `${s.id} (${number})` }));
    items.push(h('li', { 'data-session': s.id, 'aria-current': app.selected === s.id ? 'true' : null },
      h('button', { type: 'button', class: 'session', onclick: () => select(s.id) },
        h('span', { class: 'name' }, s.id, h('span', { class: 'sub', text: number || 'not linked' })),
        h('span', { class: 'badge', 'data-state': s.state, text: stateLabel(s) }))));
  }
  ul.replaceChildren(...items);
}

function select(id) {
  if (app.selected !== id) {
    app.selected = id;
    $('#pair-result').textContent = '';
    $('#contact-result').replaceChildren();
    dropQr();
  }
  renderSessions();
  renderDetail();
  renderSent();
  loadQueue().catch(fail);
  loadPresence().catch(fail);
  $('#detail-h').focus();
}

// The messages this page sent from the selected session, newest first.
function renderSent() {
  const mine = [...app.sent.values()].filter((m) => m.session === app.selected).map((m) => m.li).reverse();
  $('#sent-list').replaceChildren(...mine);
  $('#sent-box').hidden = !mine.length;
}

function dropQr() {
  if (app.qrUrl) URL.revokeObjectURL(app.qrUrl);
  app.qrUrl = null;
  app.qrCode = null;
  $('#qr-img').removeAttribute('src');
  $('#qr-code').textContent = '';
}

function renderDetail() {
  const s = app.selected && app.sessions.get(app.selected);
  const box = $('#detail');
  if (!s) { box.hidden = true; dropQr(); return; }
  box.hidden = false;
  box.dataset.session = s.id;
  $('#detail-h').textContent = s.id;
  $('#detail-h').tabIndex = -1;
  const badge = $('#detail-state');
  badge.dataset.state = s.state;
  badge.textContent = stateLabel(s);
  const facts = [['Phone', s.phone || '—'], ['Enabled', s.enabled ? 'yes' : 'no'], ['Created', when(s.created_at)]];
  if (s.since) facts.push([s.state === 'connected' ? 'Connected since' : 'Since', when(s.since)]);
  if (s.state === 'disconnected') {
    facts.push(['Why', LOST[s.reason] || s.reason || '—']);
    facts.push(['Attempts', String(s.attempts)]);
  }
  if (s.message) facts.push(['Message', s.message]);
  if (s.until) facts.push(['Retry after', when(s.until)]);
  $('#detail-facts').replaceChildren(...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
  // Sending needs a linked device; a message to a session that is reconnecting still queues.
  $('#send-form').hidden = !s.phone;
  const pairing = s.state === 'qr';
  $('#qr-box').hidden = !pairing;
  if (pairing && s.code && s.code !== app.qrCode) {
    showQr(s).catch((e) => {
      app.qrCode = null; // try again with the next state
      if (e.code !== 'not_pairing') fail(e);
    });
  }
  if (!pairing) dropQr();
  if (pairing && s.pair_code) $('#pair-result').textContent = pairCode(s.pair_code);
  for (const b of document.querySelectorAll('#detail-actions button')) {
    const act = b.dataset.act;
    b.disabled = (act === 'start' && s.enabled && s.state !== 'failed') || (act === 'stop' && !s.enabled);
  }
  tick();
}

async function showQr(s) {
  app.qrCode = s.code;
  $('#qr-code').textContent = s.code;
  const want = s.code;
  const r = await api('GET', `/api/sessions/${encodeURIComponent(s.id)}/qr?format=png`, undefined, 'image/png');
  const blob = await r.blob();
  if (app.qrCode !== want) return; // rotated meanwhile
  if (app.qrUrl) URL.revokeObjectURL(app.qrUrl);
  app.qrUrl = URL.createObjectURL(blob);
  const img = $('#qr-img');
  img.src = app.qrUrl;
  img.dataset.code = want;
}

function tick() {
  const s = app.selected && app.sessions.get(app.selected);
  const el = $('#qr-countdown');
  if (!s || s.state !== 'qr' || !s.expires_at) { el.textContent = ''; return; }
  const left = Math.max(0, Math.round((s.expires_at - Date.now()) / 1000));
  el.textContent = left > 0 ? `This code changes in ${left} s` : 'Waiting for the next code…';
}

async function loadQueue() {
  const sid = app.selected;
  const box = $('#queue');
  if (!sid) return;
  let q;
  try {
    q = await getJson(`/api/sessions/${encodeURIComponent(sid)}/queue`);
  } catch (e) {
    if (e.code === 'route_not_found') {
      box.replaceChildren(h('p', { class: 'muted', text: 'This wagate does not report its queue.' }));
      return;
    }
    if (e.status === 403 || e.status === 404) {
      box.replaceChildren(h('p', { class: 'muted', text: e.message }));
      return;
    }
    throw e;
  }
  if (sid !== app.selected) return;
  const words = (x) => String(x).replace(/_/g, ' ');
  const facts = [['Waiting', String(q.depth)], ['Held', String(q.held_count || 0)]];
  facts.push(['Next send', q.next_send_at ? when(q.next_send_at) : '—']);
  if (q.paused) {
    const p = q.paused;
    let why = words(p.reason || 'paused');
    if (p.limit) why += ` (${words(p.limit)} limit)`;
    if (p.detail) why += `: ${words(p.detail)}`;
    if (p.until) why += `, until ${when(p.until)}`;
    facts.push(['Paused', why]);
  }
  if (q.sent) facts.push(['Sent', `${q.sent.last_minute} last minute · ${q.sent.last_hour} last hour · ${q.sent.last_day} last day`]);
  if (q.warm_up && q.warm_up.active) facts.push(['Warm-up', `day ${q.warm_up.day}: at most ${q.warm_up.daily_limit} today`]);
  const dl = h('dl', { class: 'facts' }, facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
  const held = (q.held || []).map((m) => h('li', { 'data-message': m.id },
    h('div', { class: 'row' },
      h('span', { class: 'wrap' }, `${m.kind} to ${m.to} `, h('span', { class: 'badge', 'data-status': m.status, text: m.status })),
      h('button', { type: 'button', class: 'small ghost', 'aria-label': `Release ${m.id}`, onclick: () => release(sid, m.id) }, 'Release'))));
  box.replaceChildren(dl, held.length ? h('ul', { class: 'list compact', 'aria-label': 'Held messages' }, held) : '');
}

// The session's presence policy and receipts, from its settings.
async function loadPresence() {
  const sid = app.selected;
  const form = $('#presence-form');
  if (!sid) return;
  let st;
  try {
    st = await getJson(`/api/sessions/${encodeURIComponent(sid)}/settings`);
  } catch (e) {
    if (e.status === 403 || e.status === 404 || e.code === 'route_not_found') { form.hidden = true; return; }
    throw e;
  }
  if (sid !== app.selected) return;
  $('#presence').value = st.settings.presence;
  $('#active-receipts').checked = !!st.settings.active_receipts;
  $('#reject-calls').checked = !!st.settings.reject_calls;
  $('#call-reply').value = st.settings.call_reply || '';
  form.hidden = false;
}

// Only these overrides change; the session's other overrides stay as they are. A value
// equal to the platform default is no override: later default changes still reach the session.
async function savePresence({ presence, active_receipts, reject_calls, call_reply }) {
  const sid = app.selected;
  const path = `/api/sessions/${encodeURIComponent(sid)}/settings`;
  const cur = await getJson(path);
  const body = { ...cur.overrides };
  const want = {
    presence,
    active_receipts: active_receipts === 'on',
    reject_calls: reject_calls === 'on',
    call_reply: (call_reply || '').trim(),
  };
  for (const [k, v] of Object.entries(want)) {
    if (cur.defaults[k] === v) delete body[k];
    else body[k] = v;
  }
  await sendJson('PUT', path, body);
  say(`Session ${sid}: online status and calls saved.`);
  await loadPresence();
}

// A message the duplicate guard held goes back into the queue in its place.
async function release(sid, id) {
  try {
    await sendJson('POST', `/api/sessions/${encodeURIComponent(sid)}/messages/${encodeURIComponent(id)}/release`);
    say(`Message ${id} released.`);
    await loadQueue();
  } catch (err) { fail(err); }
}

function setSent(id, status) {
  const m = app.sent.get(id);
  if (!m) return;
  const order = ['queued', 'held', 'sent', 'delivered', 'read'];
  // Events may arrive out of order: never step back (failed always shows).
  if (status !== 'failed' && order.indexOf(status) < order.indexOf(m.status)) return;
  m.status = status;
  const badge = m.li.querySelector('.badge');
  badge.dataset.status = status;
  badge.textContent = status;
  m.li.dataset.status = status;
}

async function pollSent(id) {
  // The stream tells us; this covers a stream that is down.
  for (let i = 0; i < 20 && app.key; i++) {
    await sleep(i < 5 ? 1500 : 5000);
    const m = app.sent.get(id);
    if (!m || ['delivered', 'read', 'failed', 'cancelled'].includes(m.status)) return;
    if (app.live) continue;
    try {
      const v = await getJson(`/api/sessions/${encodeURIComponent(m.session)}/messages/${encodeURIComponent(id)}`);
      setSent(id, v.status);
    } catch (_) { /* next round */ }
  }
}

// ---------- webhooks ----------

// The MQTT link, when `[mqtt]` is on (health's `mqtt` object).
async function loadMqtt() {
  const m = (await getJson('/api/health')).mqtt;
  $('#mqtt-box').hidden = !m;
  if (!m) return;
  $('#mqtt-state').textContent = m.connected ? 'Connected' : 'Not connected';
  $('#mqtt-broker').textContent = `${m.broker} · topics under ${m.base_topic}`;
  const backlog = m.backlog == null ? 'unknown' : String(m.backlog);
  $('#mqtt-detail').textContent = `Backlog: ${backlog} event(s) waiting · published since start: ${m.published}`
    + (m.error ? ` · last error: ${m.error}` : '');
}

async function loadHooks() {
  loadMqtt().catch(fail);
  const list = await getJson('/api/webhooks');
  const ul = $('#hook-list');
  if (!list.length) { ul.replaceChildren(h('li', { class: 'muted', text: 'No endpoints yet.' })); return; }
  ul.replaceChildren(...list.map((e) => h('li', { 'data-endpoint': e.id },
    h('div', { class: 'row' },
      h('div', {},
        h('strong', { class: 'wrap', text: e.url }),
        h('span', { class: 'sub', text: `${e.id} · events: ${e.events.join(', ')}${e.sessions ? ' · sessions: ' + e.sessions.join(', ') : ''}` }),
        e.description ? h('span', { class: 'sub', text: e.description }) : null,
        e.disabled_reason ? h('span', { class: 'sub', text: 'Disabled: ' + e.disabled_reason }) : null),
      h('div', { class: 'actions' },
        h('span', { class: 'badge', 'data-status': e.enabled ? 'delivered' : 'cancelled', text: e.enabled ? 'enabled' : 'disabled' }),
        h('button', { type: 'button', class: 'small', onclick: () => testHook(e) }, 'Send test'),
        h('button', { type: 'button', class: 'small ghost', onclick: () => toggleHook(e) }, e.enabled ? 'Disable' : 'Enable'),
        h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${e.url}`, onclick: () => deleteHook(e) }, 'Delete'))))));
}

async function testHook(e) {
  try {
    const r = await sendJson('POST', `/api/webhooks/${encodeURIComponent(e.id)}/test`);
    say(`Test event queued for ${e.url} (delivery ${r.delivery_id}).`);
  } catch (err) { fail(err); }
}

async function toggleHook(e) {
  try {
    await sendJson('PATCH', `/api/webhooks/${encodeURIComponent(e.id)}`, { enabled: !e.enabled });
    say(`${e.url} ${e.enabled ? 'disabled' : 'enabled'}.`);
    await loadHooks();
  } catch (err) { fail(err); }
}

async function deleteHook(e) {
  if (!confirm(`Delete the endpoint ${e.url}? Its pending deliveries fail.`)) return;
  try {
    await sendJson('DELETE', `/api/webhooks/${encodeURIComponent(e.id)}`);
    say(`Endpoint ${e.url} deleted.`);
    await loadHooks();
  } catch (err) { fail(err); }
}

// ---------- deliveries ----------

async function loadDeliveries(more) {
  const q = new URLSearchParams({ limit: '50' });
  const status = $('#dlv-status').value;
  if (status) q.set('status', status);
  if (more && app.nextBefore) q.set('before', app.nextBefore);
  const log = await getJson('/api/deliveries?' + q);
  app.paged = !!more;
  const rows = log.deliveries.map((d) => h('tr', { 'data-delivery': d.id, 'data-event-type': d.event_type, 'data-status': d.status },
    h('td', { 'data-label': 'When', text: when(d.created_at) }),
    h('td', { 'data-label': 'Event' }, h('code', { text: d.event_type }), h('span', { class: 'sub wrap', text: d.id })),
    h('td', { 'data-label': 'Session', text: d.session || '—' }),
    h('td', { 'data-label': 'Status' }, h('span', { class: 'badge', 'data-status': d.status, text: d.status }),
      d.last_error ? h('span', { class: 'sub', text: d.last_error }) : null),
    h('td', { 'data-label': 'Tries', text: String(d.attempt_count) }),
    h('td', {}, d.status === 'pending' ? null
      : h('button', { type: 'button', class: 'small ghost', 'aria-label': `Redeliver ${d.id}`, onclick: () => redeliver(d) }, 'Redeliver'))));
  const body = $('#dlv-body');
  if (more) body.append(...rows);
  else body.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: '6', class: 'muted', text: 'No deliveries.' }))]));
  app.nextBefore = log.next_before || null;
  $('#dlv-more').hidden = !app.nextBefore;
}

async function redeliver(d) {
  try {
    await sendJson('POST', `/api/deliveries/${encodeURIComponent(d.id)}/redeliver`);
    say(`Delivery ${d.id} queued again.`);
    await loadDeliveries(false);
  } catch (err) { fail(err); }
}

// ---------- wiring ----------

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function busy(form, fn) {
  return async (ev) => {
    ev.preventDefault();
    const btn = form.querySelector('button[type="submit"]');
    if (btn) btn.disabled = true;
    try { await fn(formValues(form)); } catch (err) { fail(err); } finally { if (btn) btn.disabled = false; }
  };
}

function wire() {
  const signin = $('#signin-form');
  signin.addEventListener('submit', busy(signin, async ({ key }) => {
    try {
      await signIn(key.trim());
    } catch (e) {
      app.key = null;
      sessionStorage.removeItem(KEY_SLOT);
      if (e instanceof ApiError && e.status === 401) say('That key was refused.', 'error');
      else throw e;
    }
  }));
  $('#signout').addEventListener('click', () => signOut());
  window.addEventListener('hashchange', route);

  const create = $('#create-form');
  create.addEventListener('submit', busy(create, async ({ id }) => {
    const since = app.seq;
    const s = await sendJson('POST', '/api/sessions', { id: id.trim() });
    putSession(s, since);
    create.reset();
    say(`Session ${s.id} created: it is starting to pair.`);
    select(s.id);
  }));

  const pair = $('#pair-form');
  pair.addEventListener('submit', busy(pair, async ({ phone }) => {
    const r = await sendJson('POST', `/api/sessions/${encodeURIComponent(app.selected)}/pair-code`, { phone: phone.trim() });
    $('#pair-result').textContent = pairCode(r.code);
    say(`Enter ${pairCode(r.code)} on the phone: WhatsApp › Linked devices › Link with phone number.`);
  }));

  const send = $('#send-form');
  send.addEventListener('submit', busy(send, async ({ to, text }) => {
    const sid = app.selected;
    const dest = to.trim();
    const m = await sendJson('POST', `/api/sessions/${encodeURIComponent(sid)}/messages/text`, { to: dest, text });
    const li = h('li', { 'data-message': m.id, 'data-status': m.status },
      h('div', { class: 'row' }, h('span', { class: 'wrap' }, `To ${dest}: `, h('code', { text: m.id })),
        h('span', { class: 'badge', 'data-status': m.status, text: m.status })));
    app.sent.set(m.id, { session: sid, to: dest, status: m.status, li });
    renderSent();
    say(`Message ${m.id} accepted.`);
    pollSent(m.id);
  }));

  const contact = $('#contact-form');
  contact.addEventListener('submit', busy(contact, async ({ number }) => {
    const sid = app.selected;
    const out = $('#contact-result');
    out.replaceChildren();
    const c = await getJson(`/api/sessions/${encodeURIComponent(sid)}/contacts/${encodeURIComponent(number.trim())}`);
    const facts = [['On WhatsApp', c.on_whatsapp ? 'yes' : 'no']];
    if (c.jid) facts.push(['Phone', c.jid]);
    if (c.lid) facts.push(['LID', c.lid]);
    if (c.on_whatsapp) facts.push(['Business', c.business ? (c.verified_name || 'yes') : 'no']);
    if (c.about) facts.push(['About', c.about]);
    facts.push(['Checked', when(c.checked_at) + (c.cached ? ' (kept answer)' : '')]);
    out.dataset.onWhatsapp = String(c.on_whatsapp);
    out.replaceChildren(...facts.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
  }));

  const presence = $('#presence-form');
  presence.addEventListener('submit', busy(presence, savePresence));

  $('#detail-actions').addEventListener('click', async (ev) => {
    const act = ev.target.closest('button') && ev.target.closest('button').dataset.act;
    const sid = app.selected;
    if (!act || !sid) return;
    const path = `/api/sessions/${encodeURIComponent(sid)}`;
    try {
      if (act === 'delete') {
        if (!confirm(`Delete session ${sid} and every key it holds?`)) return;
        await sendJson('DELETE', path);
        app.sessions.delete(sid);
        app.selected = null;
        renderSessions();
        renderDetail();
        say(`Session ${sid} deleted.`);
        return;
      }
      if (act === 'logout' && !confirm(`Unlink ${sid} from its phone?`)) return;
      const since = app.seq;
      const s = await sendJson('POST', `${path}/${act}`);
      putSession(s, since);
      renderSessions();
      renderDetail();
      say(`Session ${sid}: ${act} done.`);
    } catch (err) { fail(err); }
  });

  const hook = $('#hook-form');
  hook.addEventListener('submit', busy(hook, async ({ url, events, description }) => {
    const body = { url: url.trim(), events: events.split(',').map((e) => e.trim()).filter(Boolean) };
    if (!body.events.length) body.events = ['*'];
    if (description.trim()) body.description = description.trim();
    const e = await sendJson('POST', '/api/webhooks', body);
    hook.reset();
    $('#secret').textContent = e.secret;
    $('#secret-box').hidden = false;
    say(`Endpoint ${e.url} added. Copy its secret now.`);
    await loadHooks();
    $('#copy-secret').focus();
  }));
  $('#copy-secret').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('#secret').textContent);
      say('Secret copied.');
    } catch (_) {
      const r = document.createRange();
      r.selectNodeContents($('#secret'));
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      say('Copying is not allowed here: the secret is selected, copy it by hand.', 'error');
    }
  });
  $('#hide-secret').addEventListener('click', () => {
    $('#secret').textContent = '';
    $('#secret-box').hidden = true;
  });

  const filter = $('#dlv-filter');
  filter.addEventListener('submit', busy(filter, () => loadDeliveries(false)));
  $('#dlv-more').addEventListener('click', () => loadDeliveries(true).catch(fail));
}

wire();
const saved = sessionStorage.getItem(KEY_SLOT);
if (saved) {
  app.key = saved;
  start();
} else {
  $('#signin').hidden = false;
}
