// wagate dashboard: plain JavaScript against the HTTP API, no build step, nothing loaded
// from elsewhere. The API key lives in sessionStorage (this tab only) and goes out only as
// the Authorization header of same-origin requests.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const KEY = 'wagate.key';
  let key = null;
  let sessions = new Map();
  let events = null; // AbortController of the live stream
  let pairing = null; // the session whose QR is shown
  let shownCode = null;
  let qrUrl = null;
  let qrTimer = null;
  let skew = 0; // device clock minus this browser's, from the Date header

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${key}` };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method,
      headers,
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const date = Date.parse(r.headers.get('Date') || '');
    if (!Number.isNaN(date)) skew = date - Date.now();
    if (!r.ok) {
      let code = `http_${r.status}`;
      let message = `${r.status} ${r.statusText}`;
      try {
        const e = (await r.json()).error;
        code = e.code;
        message = e.message;
      } catch (_) { /* not a JSON error */ }
      if (r.status === 401 && key) signOut(message);
      throw new ApiError(r.status, code, message);
    }
    return r;
  }

  const path = (sid, rest = '') => `/api/sessions/${encodeURIComponent(sid)}${rest}`;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function button(text, onclick) {
    const b = el('button', text, 'secondary');
    b.type = 'button';
    b.addEventListener('click', onclick);
    return b;
  }

  // ---- signing in ----------------------------------------------------------------------

  function show(signedIn) {
    $('signin').hidden = signedIn;
    $('app').hidden = !signedIn;
    $('signout').hidden = !signedIn;
  }

  async function signIn(candidate) {
    key = candidate;
    $('signin-error').textContent = '';
    try {
      const list = await (await api('GET', '/api/sessions')).json();
      sessionStorage.setItem(KEY, candidate);
      show(true);
      setSessions(list);
      listen();
    } catch (e) {
      key = null;
      sessionStorage.removeItem(KEY);
      show(false);
      $('signin-error').textContent = e.status === 401
        ? `That key was not accepted: ${e.message}`
        : e.message;
    }
  }

  function signOut(reason) {
    key = null;
    sessionStorage.removeItem(KEY);
    if (events) events.abort();
    events = null;
    closePair();
    show(false);
    $('signin-error').textContent = reason || '';
    $('key').value = '';
  }

  // ---- sessions ------------------------------------------------------------------------

  function label(s) {
    switch (s.state) {
      case 'qr': return 'waiting to be linked';
      case 'failed': return `failed: ${s.reason || 'unknown'}`;
      case 'disconnected': return `reconnecting (attempt ${s.attempts || 1})`;
      default: return s.state;
    }
  }

  function setSessions(list) {
    sessions = new Map(list.map((s) => [s.id, s]));
    render();
  }

  function render() {
    const ul = $('sessions');
    ul.replaceChildren();
    const select = $('send-sid');
    const chosen = select.value;
    select.replaceChildren();
    const all = [...sessions.values()].sort((a, b) => a.id.localeCompare(b.id));
    for (const s of all) {
      const li = el('li');
      li.append(el('strong', s.id), el('span', label(s), `state state-${s.state}`));
      if (s.phone) li.append(el('span', s.phone, 'muted'));
      if (s.state === 'qr') li.append(button('Link a phone', () => openPair(s.id)));
      if (s.state === 'stopped' || s.state === 'failed') {
        li.append(button('Start', () => api('POST', path(s.id, '/start'))
          .catch((e) => { $('create-error').textContent = `${s.id}: ${e.message}`; })));
      }
      ul.append(li);
      const o = el('option', s.id);
      o.value = s.id;
      select.append(o);
    }
    if (!all.length) ul.append(el('li', 'No sessions yet.'));
    if (chosen && sessions.has(chosen)) select.value = chosen;
    if (pairing) updatePair();
  }

  // A `state` event carries the session id and its new state's fields.
  function applyState(ev) {
    const old = sessions.get(ev.session) || { id: ev.session };
    const next = { id: old.id, enabled: old.enabled, phone: old.phone, lid: old.lid, created_at: old.created_at };
    for (const [k, v] of Object.entries(ev)) if (k !== 'session') next[k] = v;
    sessions.set(next.id, next);
    render();
  }

  async function reload() {
    setSessions(await (await api('GET', '/api/sessions')).json());
  }

  // Server-Sent Events over fetch (EventSource cannot send the Authorization header).
  async function listen() {
    if (events) events.abort();
    const ctl = new AbortController();
    events = ctl;
    let delay = 1000;
    while (!ctl.signal.aborted) {
      try {
        const r = await fetch('/api/events?type=state,resync', {
          headers: { Authorization: `Bearer ${key}`, Accept: 'text/event-stream' },
          signal: ctl.signal,
          cache: 'no-store',
        });
        if (r.status === 401) return signOut('The key is no longer valid.');
        if (!r.ok || !r.body) throw new Error(`HTTP ${r.status}`);
        $('live').textContent = 'Live';
        delay = 1000;
        await reload(); // what changed while we were away
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n/g, '\n');
          let i;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            onEvent(buf.slice(0, i));
            buf = buf.slice(i + 2);
          }
        }
      } catch (_) {
        if (ctl.signal.aborted) return;
      }
      $('live').textContent = 'Connection lost; reconnecting…';
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 30000);
    }
  }

  function onEvent(block) {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (name === 'resync') {
      reload().catch(() => {});
    } else if (name === 'state' && data.length) {
      try { applyState(JSON.parse(data.join('\n'))); } catch (_) { /* ignore a bad event */ }
    }
  }

  // ---- linking a phone -----------------------------------------------------------------

  function openPair(sid) {
    pairing = sid;
    shownCode = null;
    $('pair').hidden = false;
    $('pair-sid').textContent = sid;
    $('pair-code').textContent = '';
    $('pair-error').textContent = '';
    updatePair();
    $('pair').scrollIntoView({ block: 'nearest' });
  }

  function closePair() {
    pairing = null;
    shownCode = null;
    $('pair').hidden = true;
    clearInterval(qrTimer);
    qrTimer = null;
    if (qrUrl) URL.revokeObjectURL(qrUrl);
    qrUrl = null;
  }

  async function updatePair() {
    const s = sessions.get(pairing);
    if (!s) return closePair();
    clearInterval(qrTimer);
    if (s.state !== 'qr') {
      $('qr').hidden = true;
      $('countdown').textContent = s.state === 'connected'
        ? `Linked${s.phone ? ` to ${s.phone}` : ''}.`
        : `The session is ${label(s)}.`;
      return;
    }
    if (s.pair_code) $('pair-code').textContent = s.pair_code;
    $('qr').hidden = false;
    if (s.code && s.code !== shownCode) {
      shownCode = s.code;
      try {
        const blob = await (await api('GET', path(pairing, '/qr?format=svg'))).blob();
        if (qrUrl) URL.revokeObjectURL(qrUrl);
        qrUrl = URL.createObjectURL(blob);
        $('qr').src = qrUrl;
      } catch (e) {
        $('pair-error').textContent = e.message;
      }
    }
    const tick = () => {
      const left = Math.max(0, Math.round((s.expires_at - (Date.now() + skew)) / 1000));
      $('countdown').textContent = left > 0 ? `This code is valid for ${left} s.` : 'Waiting for the next code…';
    };
    tick();
    qrTimer = setInterval(tick, 1000);
  }

  // ---- forms ---------------------------------------------------------------------------

  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('key').value.trim());
  });

  $('signout').addEventListener('click', () => signOut(''));

  $('create-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const id = $('new-id').value.trim();
    $('create-error').textContent = '';
    try {
      const s = await (await api('POST', '/api/sessions', { id })).json();
      sessions.set(s.id, s);
      $('new-id').value = '';
      render();
      openPair(s.id);
    } catch (err) {
      $('create-error').textContent = err.message;
    }
  });

  $('code-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    $('pair-error').textContent = '';
    try {
      const r = await (await api('POST', path(pairing, '/pair-code'), { phone: $('phone').value.trim() })).json();
      $('pair-code').textContent = r.code;
    } catch (err) {
      $('pair-error').textContent = err.message;
    }
  });

  $('send-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const out = $('send-status');
    const sid = $('send-sid').value;
    try {
      const body = { to: $('send-to').value.trim(), text: $('send-text').value };
      const m = await (await api('POST', path(sid, '/messages/text'), body)).json();
      out.textContent = `Queued (${m.id}).`;
      for (let i = 0; i < 30; i++) {
        await new Promise((res) => setTimeout(res, 1000));
        const now = await (await api('GET', path(sid, `/messages/${encodeURIComponent(m.id)}`))).json();
        out.textContent = `Message ${m.id}: ${now.status}`;
        if (['delivered', 'read', 'failed'].includes(now.status)) break;
      }
    } catch (err) {
      out.textContent = `Not sent: ${err.message}`;
    }
  });

  // ---- start ---------------------------------------------------------------------------

  fetch('/api/health', { cache: 'no-store' })
    .then((r) => r.json())
    .then((h) => {
      const parts = [`v${h.version}`];
      if (h.device_id) parts.unshift(`device ${h.device_id}`);
      if (h.cert_sha256) parts.push(`certificate SHA-256 ${h.cert_sha256}`);
      $('device').textContent = parts.join(' · ');
    })
    .catch(() => {});

  const saved = sessionStorage.getItem(KEY);
  if (saved) signIn(saved); else show(false);
})();
