// The dashboard end to end in a real browser: Debian's headless Chromium driven by
// playwright-core, against the wagate binary (built with trust-wa-mock) talking to the
// wa-mock binary. Nothing here reaches into wagate's internals: the browser does what a
// user does, wa-mock's admin API plays the phone, and a small HTTP server here receives the
// webhooks.
//
// Every main view is also audited with axe-core (from node_modules, injected into the page;
// nothing downloaded at run time) at phone and desktop widths, in the light and the dark
// colour scheme (axe's WCAG A/AA and best-practice rules, and AAA contrast): any violation
// of impact "serious" or "critical" fails the test.
//
// Inputs (environment): DASH_WAGATE_BIN, DASH_WA_MOCK_BIN (the two binaries),
// DASH_ARTIFACTS (where screenshots go; git-ignored), DASH_CHROMIUM (default
// /usr/bin/chromium).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, openSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import jsQR from 'jsqr';

const here = dirname(fileURLToPath(import.meta.url));
const WAGATE = process.env.DASH_WAGATE_BIN;
const WA_MOCK = process.env.DASH_WA_MOCK_BIN;
const ARTIFACTS = process.env.DASH_ARTIFACTS || join(here, 'artifacts');
const CHROMIUM = process.env.DASH_CHROMIUM || '/usr/bin/chromium';
const STEP = 30_000;
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

if (!WAGATE || !WA_MOCK) throw new Error('set DASH_WAGATE_BIN and DASH_WA_MOCK_BIN');

const children = [];
const cleanups = [];
let failed = false;

function log(...a) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...a);
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  log('ok:', what);
}

async function waitFor(what, fn, ms = STEP) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

// A child process whose output goes to a log file in the artifacts.
function run(name, bin, args, env) {
  const out = join(ARTIFACTS, `${name}.log`);
  const fd = openSync(out, 'w');
  const child = spawn(bin, args, { env, stdio: ['ignore', fd, fd] });
  child.on('exit', (code, sig) => { if (!child.stopping) log(`${name} exited (${code ?? sig}); see ${out}`); });
  children.push(child);
  return child;
}

// The webhook receiver: records every POST with its headers.
function receiver() {
  const hits = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let json = null;
      try { json = JSON.parse(body); } catch (_) { /* recorded as text */ }
      hits.push({ headers: req.headers, body, json });
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    cleanups.push(() => server.close());
    resolve({ url: `http://127.0.0.1:${server.address().port}/hooks`, hits });
  }));
}

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), 'wagate-dash-'));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));

  // 1. wa-mock.
  const mockPort = await freePort();
  const mockBase = `http://127.0.0.1:${mockPort}`;
  run('wa-mock', WA_MOCK, ['--listen', `127.0.0.1:${mockPort}`], { PATH: process.env.PATH, RUST_LOG: 'info' });
  await waitFor('wa-mock', async () => (await fetch(mockBase + '/admin/accounts')).ok);
  const cert = await fetch(mockBase + '/admin/media-cert');
  const caFile = join(tmp, 'mock-ca.pem');
  let trust = '';
  if (cert.ok) {
    writeFileSync(caFile, await cert.text());
    trust = `trust_ca_file = "${caFile}"\n`;
  }

  // 1b. An MQTT broker (Debian's mosquitto) for the dashboard's MQTT card.
  const mqttPort = await freePort();
  const mqttConf = join(tmp, 'mosquitto.conf');
  writeFileSync(mqttConf, `listener ${mqttPort} 127.0.0.1\nallow_anonymous true\n`
    + (process.getuid() === 0 ? 'user root\n' : ''));
  const mosquitto = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'].find((p) => existsSync(p)) || 'mosquitto';
  run('mosquitto', mosquitto, ['-c', mqttConf], { PATH: process.env.PATH });

  // 2. wagate: a config file (no WAGATE_* variables), an admin key made before start.
  const apiPort = await freePort();
  const base = `http://127.0.0.1:${apiPort}`;
  const config = join(tmp, 'wagate.toml');
  writeFileSync(config, `[store]
data_dir = "${join(tmp, 'data')}"

[api]
addr = "127.0.0.1:${apiPort}"

[whatsapp]
url = "ws://127.0.0.1:${mockPort}/ws/chat"
${trust}
[display]
backend = "none"
terminal_qr = false

[mqtt]
url = "mqtt://127.0.0.1:${mqttPort}"
base_topic = "wagate/browser"
`);
  const env = { PATH: process.env.PATH, HOME: tmp };
  const key = execFileSync(WAGATE, ['--config', config, 'key', 'create', '--scope', 'admin', '--name', 'browser-test'], { env })
    .toString().trim();
  check(key.length > 20 && !key.includes('\n'), 'wagate key create printed one key');
  run('wagate', WAGATE, ['--config', config, 'run'], { ...env, RUST_LOG: 'info' });
  await waitFor('wagate', async () => (await fetch(base + '/api/health')).ok);

  const rx = await receiver();

  // 3. The browser.
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  cleanups.unshift(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('dialog', (d) => d.accept());
  const httpErrors = [];
  page.on('response', (r) => { if (r.status() >= 400) httpErrors.push(`${r.status()} ${new URL(r.url()).pathname}`); });
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('blob:') && !r.url().startsWith('data:')) external.push(r.url()); });

  async function shoot(name) {
    // The narrowest common phone: nothing wider than the screen (no sideways scrolling).
    await page.setViewportSize({ width: 360, height: 740 });
    await page.waitForTimeout(100);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(wide <= 0, `${name}: fits a 360 px screen (overflow ${wide} px)`);
    for (const [w, hgt, tag] of [[390, 844, 'phone'], [1280, 800, 'desktop']]) {
      await page.setViewportSize({ width: w, height: hgt });
      await page.waitForTimeout(150);
      await page.screenshot({ path: join(ARTIFACTS, `${name}-${tag}.png`), fullPage: true });
    }
    await page.setViewportSize({ width: 1280, height: 800 });
    await audit(name);
  }

  // axe-core on the page as it is now, at a phone's and a desktop's width, light and dark:
  // its default rules (WCAG 2.x A and AA, best practices) and AAA contrast (7:1). Violations
  // of impact serious or critical fail; lesser ones are printed.
  async function audit(name) {
    // The file's text goes in through the DevTools protocol: page.addScriptTag would add an
    // inline <script>, which the dashboard's own CSP (script-src 'self') rightly refuses, and
    // bypassing the CSP for the whole test would hide a page that breaks it.
    if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE);
    const serious = [];
    for (const [w, hgt, tag] of [[390, 844, 'phone'], [1280, 800, 'desktop']]) {
      for (const scheme of ['light', 'dark']) {
        await page.setViewportSize({ width: w, height: hgt });
        await page.emulateMedia({ colorScheme: scheme });
        await page.waitForTimeout(100);
        const r = await page.evaluate(async () => {
          const res = await window.axe.run(document, {
            resultTypes: ['violations'],
            rules: { 'color-contrast-enhanced': { enabled: true } },
          });
          return {
            passes: res.passes.length,
            violations: res.violations.map((v) => ({
              id: v.id, impact: v.impact, help: v.help,
              targets: v.nodes.map((n) => n.target.join(' ')),
            })),
          };
        });
        if (r.passes === 0) throw new Error(`${name}: axe-core passed no rule at all (did it run?)`);
        for (const v of r.violations) {
          const line = `${name} (${tag}, ${scheme}): [${v.impact}] ${v.id}: ${v.help}: ${v.targets.join(', ')}`;
          if (v.impact === 'serious' || v.impact === 'critical') serious.push(line);
          else log('axe (not failing):', line);
        }
      }
    }
    await page.emulateMedia({ colorScheme: 'light' });
    await page.setViewportSize({ width: 1280, height: 800 });
    for (const l of serious) console.error('axe:', l);
    check(serious.length === 0, `${name}: axe-core finds no serious or critical violation (phone and desktop, light and dark)`);
  }

  // Sign in (a wrong key first: refused, nothing kept).
  await page.goto(base + '/');
  check(await page.title() === 'wagate', 'the page loads');
  await shoot('01-signin');
  await page.getByLabel('API key').fill('wg_not_a_real_key');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => document.querySelector('#status').dataset.kind === 'error');
  await audit('01-signin-refused');
  check(await page.evaluate(() => sessionStorage.length === 0), 'a refused key is not kept');
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#nav').waitFor({ state: 'visible' });
  check(await page.evaluate((k) => sessionStorage.getItem('wagate.key') === k && localStorage.length === 0 && document.cookie === '', key),
    'the key is in sessionStorage only (no localStorage, no cookie)');
  await page.locator('#live[data-live="on"]').waitFor();
  check(true, 'the live stream (fetch-read SSE) is up');

  // Create a session in the page, read its QR image from the page, scan it with the mock phone.
  async function pairByQr(id, screenshot) {
    await page.getByRole('link', { name: 'Sessions' }).click();
    await page.getByLabel('New session id').fill(id);
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator(`#detail[data-session="${id}"]`).waitFor();
    await page.locator('#qr-img[data-code]').waitFor();
    // The countdown moves (read before the pixels: the code may change meanwhile).
    const first = await page.locator('#qr-countdown').textContent();
    const left = /changes in (\d+) s/.exec(first);
    check(left, `${id}: the QR has a countdown ("${first}")`);
    await page.waitForFunction((n) => {
      const m = /changes in (\d+) s/.exec(document.querySelector('#qr-countdown').textContent);
      return !m || Number(m[1]) < n;
    }, Number(left[1]));
    check(true, `${id}: the countdown counts down`);
    await page.locator('#qr-img[data-code]').waitFor();
    await page.waitForFunction(() => { const i = document.querySelector('#qr-img'); return i.complete && i.naturalWidth > 0; });
    // The pixels as the browser drew them (a canvas is same-origin: the image is a blob),
    // decoded here with jsQR.
    const shot = await page.evaluate(() => {
      const img = document.querySelector('#qr-img');
      const c = document.createElement('canvas');
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      let bin = '';
      for (let i = 0; i < px.length; i += 0x8000) bin += String.fromCharCode(...px.subarray(i, i + 0x8000));
      return { w: c.width, h: c.height, px: btoa(bin), code: img.dataset.code, text: document.querySelector('#qr-code').textContent };
    });
    const found = jsQR(new Uint8ClampedArray(Buffer.from(shot.px, 'base64')), shot.w, shot.h);
    const decoded = { qr: found && found.data, text: shot.code };
    check(shot.text === shot.code, `${id}: the page shows the QR's code as text too`);
    check(decoded.qr && decoded.qr === decoded.text, `${id}: the QR image decodes to the code the page shows as text`);
    if (screenshot) await shoot(screenshot);
    const scan = await fetch(mockBase + '/admin/scan', { method: 'POST', body: decoded.qr });
    check(scan.ok, `${id}: wa-mock scanned the QR`);
    await page.locator(`#detail-state[data-state="connected"]`).waitFor();
    await page.locator(`#session-list li[data-session="${id}"] .badge[data-state="connected"]`).waitFor();
    const phone = (await page.locator(`#session-list li[data-session="${id}"] .sub`).textContent()).trim();
    check(/^\d{7,15}$/.test(phone) || phone.includes('@'), `${id}: connected, phone ${phone} shown`);
    return phone;
  }

  // A webhook endpoint first, so the conversation below is delivered to it.
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.getByLabel('URL').fill(rx.url);
  await page.getByRole('button', { name: 'Add endpoint' }).click();
  await page.locator('#secret-box').waitFor({ state: 'visible' });
  const secret = (await page.locator('#secret').textContent()).trim();
  check(secret.length >= 16, 'the secret is shown once after creating an endpoint');
  await page.locator(`#hook-list li[data-endpoint]`).first().waitFor();
  await shoot('03-webhooks-secret');
  await page.getByRole('button', { name: 'Done' }).click();
  check(await page.locator('#secret').textContent() === '', 'the secret is gone from the page after Done');
  await page.getByRole('button', { name: 'Send test' }).click();
  await waitFor('webhook.test at the receiver', () => rx.hits.some((h) => h.json && h.json.type === 'webhook.test'));
  check(true, 'the endpoint test reached the receiver');
  await page.reload();
  await page.locator('#nav').waitFor({ state: 'visible' });
  check(!(await page.content()).includes(secret), 'the secret is not shown again after a reload (key kept in the tab)');
  // The MQTT card says the broker is connected (wagate reached the real mosquitto).
  await page.getByRole('link', { name: 'Webhooks' }).click();
  await page.locator('#mqtt-box').waitFor({ state: 'visible' });
  await waitFor('the MQTT card to say connected', async () => {
    if ((await page.locator('#mqtt-state').textContent()) === 'Connected') return true;
    await page.reload();
    await page.getByRole('link', { name: 'Webhooks' }).click();
    return false;
  });
  const mqttText = await page.locator('#mqtt-broker').textContent();
  check(mqttText.includes(`mqtt://127.0.0.1:${mqttPort}`) && mqttText.includes('wagate/browser'),
    `the MQTT card names the broker and the base topic (${mqttText})`);
  const alicePhone = await pairByQr('alice', '02-session-qr');
  const bobPhone = await pairByQr('bob', null);
  check(alicePhone !== bobPhone, 'two different phones');

  // Send a text from alice to bob's phone; watch it become delivered in the page.
  await page.locator('#session-list li[data-session="alice"] button').click();
  await page.locator('#detail[data-session="alice"]').waitFor();
  await page.getByLabel('To (phone number or chat JID)').fill(bobPhone);
  await page.getByLabel('Text').fill('hello bob, from the dashboard');
  await page.getByRole('button', { name: 'Send' }).click();
  const sent = page.locator('#sent-list li').first();
  await sent.waitFor();
  const msgId = await sent.getAttribute('data-message');
  await page.locator(`#sent-list li[data-message="${msgId}"]:is([data-status="delivered"], [data-status="read"])`).waitFor();
  check(true, `message ${msgId} shows delivered in the page`);
  // The queue answer in words: nothing waiting, the one send counted.
  await page.waitForFunction(() => {
    const facts = {};
    const dts = document.querySelectorAll('#queue dl.facts dt');
    for (const dt of dts) facts[dt.textContent] = dt.nextElementSibling && dt.nextElementSibling.textContent;
    return facts.Waiting === '0' && facts.Held === '0' && /^1 last minute/.test(facts.Sent || '');
  });
  const queue = (await page.locator('#queue').textContent()).trim();
  check(true, `the queue shows nothing waiting and one send ("${queue.slice(0, 80)}")`);
  await shoot('04-session-connected');

  // Check a number: bob's phone is on WhatsApp, with its LID; asked again, the kept answer.
  await page.getByLabel('Number to check, with country code').fill(bobPhone);
  await page.getByRole('button', { name: 'Check' }).click();
  await page.locator('#contact-result[data-on-whatsapp="true"]').waitFor();
  const contactText = await page.locator('#contact-result').textContent();
  check(contactText.includes('@lid') && contactText.includes(`${bobPhone}@s.whatsapp.net`),
    `the number check shows bob on WhatsApp with phone JID and LID (${contactText})`);
  await page.getByRole('button', { name: 'Check' }).click();
  await page.waitForFunction(() => document.querySelector('#contact-result').textContent.includes('kept answer'));
  check(true, 'checked again, the kept answer is shown');

  // Online status: offline by default with active receipts; "Always online" is saved as the
  // session's override and the device announces itself available at wa-mock.
  await page.locator('#presence-form').waitFor({ state: 'visible' });
  check(await page.getByLabel('Between sends this device is').inputValue() === 'unavailable',
    'a session is offline between sends by default');
  check(await page.getByLabel('Senders see "delivered" when this box gets their message').isChecked(),
    'active receipts are on by default');
  const aliceJid = await (async () => {
    const accounts = await (await fetch(mockBase + '/admin/accounts')).json();
    const acc = accounts.find((a) => a.phone === alicePhone);
    return acc.devices[acc.devices.length - 1].jid;
  })();
  const presenceOf = async () => {
    const r = await fetch(`${mockBase}/admin/stanzas?device=${encodeURIComponent(aliceJid)}&tag=presence&direction=in`);
    const list = (await r.json()).filter((x) => !/\sto="/.test(x.xml));
    const last = list[list.length - 1];
    return last && (/type="([a-z]+)"/.exec(last.xml) || [])[1];
  };
  await waitFor('alice offline at wa-mock', async () => (await presenceOf()) === 'unavailable');
  await page.getByLabel('Between sends this device is').selectOption('available');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor('alice online at wa-mock', async () => (await presenceOf()) === 'available');
  await page.reload();
  await page.locator('#nav').waitFor({ state: 'visible' });
  await page.locator('#session-list li[data-session="alice"] button').click();
  await page.locator('#presence-form').waitFor({ state: 'visible' });
  await waitFor('the saved status after a reload', async () =>
    (await page.getByLabel('Between sends this device is').inputValue()) === 'available');
  check(true, 'the online status is saved, applied at wa-mock, and shown after a reload');

  // Calls: "Decline calls" with a reply is saved; bob calls alice through wa-mock; the page
  // says the call came and was declined, and alice's device sent WhatsApp its <reject>.
  await page.getByLabel('Decline calls (a gateway cannot answer them)').check();
  await page.getByLabel('Then write to the caller (optional)').fill('No calls here, please write.');
  await page.getByRole('button', { name: 'Save' }).click();
  await waitFor('the call settings saved', async () => {
    const st = await (await fetch(base + '/api/sessions/alice/settings', { headers: { authorization: `Bearer ${key}` } })).json();
    return st.settings.reject_calls === true && st.settings.call_reply === 'No calls here, please write.';
  });
  const callId = (await (await fetch(mockBase + '/admin/call', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ caller: bobPhone, callee: alicePhone }),
  })).json()).call_id;
  check(!!callId, 'wa-mock rang alice');
  await page.waitForFunction(() => /declined the call from .* and wrote to the caller/.test(document.querySelector('#status').textContent));
  const rejects = await (await fetch(`${mockBase}/admin/stanzas?device=${encodeURIComponent(aliceJid)}&tag=call&direction=in`)).json();
  check(rejects.some((x) => x.xml.includes('<reject') && x.xml.includes(callId)),
    'the page reports the declined call and alice sent WhatsApp its reject');

  // The webhook deliveries, in the receiver and in the delivery log page.
  await waitFor('message.received and message.delivered at the receiver', () =>
    rx.hits.some((h) => h.json && h.json.type === 'message.received' && h.json.session === 'bob' && h.json.data.text === 'hello bob, from the dashboard')
    && rx.hits.some((h) => h.json && h.json.type === 'message.delivered' && h.json.data.id === msgId));
  check(true, 'the receiver got message.received (bob) and message.delivered (alice)');
  await page.getByRole('link', { name: 'Deliveries' }).click();
  const row = page.locator('#dlv-body tr[data-event-type="message.received"][data-status="delivered"]').first();
  await row.waitFor();
  await page.locator('#dlv-body tr[data-event-type="message.delivered"][data-status="delivered"]').first().waitFor();
  check(true, 'the delivery log page lists the deliveries as delivered');
  await shoot('05-deliveries');
  const dlvId = await row.getAttribute('data-delivery');
  const before = rx.hits.filter((h) => h.headers['webhook-id'] === dlvId || h.headers['x-wagate-delivery-id'] === dlvId).length;
  await row.getByRole('button', { name: `Redeliver ${dlvId}` }).click();
  await waitFor('the redelivery at the receiver', () =>
    rx.hits.filter((h) => h.headers['webhook-id'] === dlvId || h.headers['x-wagate-delivery-id'] === dlvId).length > before);
  check(true, `redeliver sent ${dlvId} again with the same delivery id`);

  // Pairing by phone code: the page shows the code wagate got for the number.
  await page.getByRole('link', { name: 'Sessions' }).click();
  await page.getByLabel('New session id').fill('carol');
  await page.getByRole('button', { name: 'Create' }).click();
  await page.locator('#detail[data-session="carol"] #qr-box:not([hidden])').waitFor();
  await page.getByLabel('Phone number with country code').fill('4915112345678');
  await page.getByRole('button', { name: 'Get code' }).click();
  await page.waitForFunction(() => /^[A-Z0-9]{4}-?[A-Z0-9]{4}$/.test(document.querySelector('#pair-result').textContent.trim()));
  const pairCode = (await page.locator('#pair-result').textContent()).trim();
  check(true, `a pairing code is shown (${pairCode})`);
  await shoot('06-pair-code');
  // The phone's owner types the code into WhatsApp (the mock phone): carol is linked.
  const entered = await fetch(mockBase + '/admin/pair-code', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ phone: '4915112345678', code: pairCode.replace('-', '') }),
  });
  check(entered.ok, `wa-mock's phone entered the code (${entered.status})`);
  await page.locator('#detail-state[data-state="connected"]').waitFor();
  await page.locator('#session-list li[data-session="carol"] .badge[data-state="connected"]').waitFor();
  const carolPhone = (await page.locator('#session-list li[data-session="carol"] .sub').textContent()).trim();
  check(carolPhone.includes('4915112345678'), `carol is paired by phone code as ${carolPhone}`);
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.locator('#session-list li[data-session="carol"]').waitFor({ state: 'detached' });
  check(true, 'a session is deleted from the page');

  // Sign out forgets the key.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.locator('#signin').waitFor({ state: 'visible' });
  check(await page.evaluate(() => sessionStorage.length === 0 && localStorage.length === 0), 'sign out clears the key');
  await page.reload();
  await page.locator('#signin').waitFor({ state: 'visible' });
  check(await page.locator('#nav').isHidden(), 'after sign out a reload asks for a key');

  check(external.length === 0, `no request left the device (${external.join(', ')})`);
  // The expected refusal: the wrong key (401). Chromium logs each failed load as a console
  // error; anything else is a fault.
  const expected = (e) => e === '401 /api/openapi.json';
  const badHttp = httpErrors.filter((e) => !expected(e));
  check(badHttp.length === 0, `no unexpected HTTP errors (${badHttp.join(', ')})`);
  const unexpected = consoleErrors.filter((e) => !e.startsWith('Failed to load resource'));
  check(unexpected.length === 0, `no script errors (${unexpected.join(' | ')})`);
  log('screenshots in', ARTIFACTS);
}

try {
  await main();
  log('PASS');
} catch (e) {
  failed = true;
  console.error('FAIL:', e);
} finally {
  for (const c of cleanups) {
    try { await c(); } catch (_) { /* best effort */ }
  }
  for (const c of children) {
    c.stopping = true;
    c.kill('SIGTERM');
  }
  process.exitCode = failed ? 1 : 0;
}
