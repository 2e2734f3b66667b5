//! MQTT: the outbox's events to a broker, send commands from it, and Home Assistant discovery.
//!
//! - **Events out.** The broker is one more delivery endpoint of the outbox (the fixed row
//!   [`outbox::MQTT_ENDPOINT`], kept in step with `[mqtt]` at start). Its deliveries are
//!   published here, one at a time at QoS 1, in the order of the outbox's schedule, to
//!   `<base>/<session>/event/<type>` with the webhook body. A delivery is `delivered` once the
//!   broker's PUBACK says so, recorded in the store after the batch. While the broker is away
//!   nothing is attempted, so nothing is rescheduled and the backlog keeps its order; a broker
//!   that refuses a message (a PUBACK reason code, e.g. its ACL) gets the webhook retry
//!   schedule. A crash or a lost connection between a publish and its record publishes the
//!   same event again, with the same id.
//! - **Commands in.** `<base>/<session>/send/<kind>` takes the body of
//!   `POST /api/sessions/{sid}/messages/{kind}` and answers on the MQTT 5 response topic with
//!   its correlation data, or on `<base>/<session>/result` with the `request_id` of the body.
//!   The message is in the durable queue before the answer (and before the PUBACK: acks are
//!   manual); the request id is the idempotency key.
//! - **Home Assistant.** One device per session ([`ha`]), its state retained on
//!   `<base>/<session>/status`, its pairing QR on `<base>/<session>/qr`, the bridge's
//!   availability on `<base>/status` (the last will says `offline`). Discovery is published at
//!   every connect and again when Home Assistant announces `online`.

mod ha;
mod tls;

pub use ha::{Topics, device_config, slug};
pub use tls::{Trust, parse_pin};

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason, Publish, PublishProperties};
use rumqttc::v5::{AsyncClient, Event as MqttEvent, EventLoop, MqttOptions};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::clock::Clock;
use crate::config::{MqttConfig, NotifyTarget};
use crate::engine::SessionManager;
use crate::events::{Event, Notice, SessionState};
use crate::net::api::{ApiError, MAX_REQUEST_ID, accepted_status, queue_message};
use crate::store::{Store, StoreError, outbox};

/// Deliveries read per batch (their outcomes are recorded in one transaction).
const BATCH: usize = 64;

/// How long a publish may wait for its PUBACK before the connection counts as lost.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Session expiry asked of the broker: commands published while wagate is away wait there
/// this long.
const SESSION_EXPIRY_SECS: u32 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("mqtt.url: {0}")]
    Url(String),
    #[error("mqtt TLS: {0}")]
    Tls(String),
    #[error("mqtt.password_file: {0}")]
    Password(#[source] std::io::Error),
}

/// Where the broker is and what to do there.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `Some` for `mqtts://`.
    pub tls: Option<Trust>,
    pub username: String,
    pub password: Option<crate::config::Secret>,
    pub client_id: String,
    pub topics: Topics,
    pub discovery: bool,
    pub commands: bool,
    pub keep_alive: Duration,
    pub notify: Vec<NotifyTarget>,
    /// The webhook retry schedule, for messages the broker refuses.
    pub retries_ms: Vec<u64>,
    /// The backlog's bounds (`webhooks.retention_days`, `retention_max_deliveries`,
    /// `retention_max_mb`): older, more or bigger events waiting for the broker end `expired`.
    pub backlog_max_age: Duration,
    pub backlog_max: u64,
    pub backlog_max_bytes: u64,
}

/// `mqtt://host[:port]` / `mqtts://host[:port]` → (tls, host, port).
pub fn parse_url(url: &str) -> Result<(bool, String, u16), MqttError> {
    let bad = |why: &str| MqttError::Url(format!("{url:?}: {why}"));
    let lower = url.to_ascii_lowercase();
    let (tls, rest) = if let Some(r) = lower.strip_prefix("mqtts://") {
        (true, &url[url.len() - r.len()..])
    } else if let Some(r) = lower.strip_prefix("mqtt://") {
        (false, &url[url.len() - r.len()..])
    } else {
        return Err(bad("must start with mqtt:// or mqtts://"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(bad(
            "put the credentials in mqtt.username and mqtt.password, not in the URL",
        ));
    }
    if rest.contains('/') {
        return Err(bad("a broker URL has no path"));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("unclosed [ in the host"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
            None if after.is_empty() => default_port,
            None => return Err(bad("junk after the host")),
        };
        (h.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| bad("the port is not a number"))?,
            ),
            None => (rest.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((tls, host, port))
}

impl Settings {
    /// The settings of `[mqtt]` on this device (`device_id` names the default client id and
    /// base topic).
    pub fn from_config(
        c: &MqttConfig,
        device_id: &str,
        webhooks: &crate::config::WebhooksConfig,
    ) -> Result<Settings, MqttError> {
        let retries_ms = crate::net::webhook::Settings::from(webhooks).retries_ms;
        let (secure, host, port) = parse_url(&c.url)?;
        let tls = secure.then(|| {
            if let Some(pin) = parse_pin(&c.cert_sha256) {
                Trust::Pinned(pin)
            } else if !c.ca_file.as_os_str().is_empty() {
                Trust::CaFile(c.ca_file.clone())
            } else {
                Trust::System
            }
        });
        let id = slug(device_id);
        Ok(Settings {
            host,
            port,
            tls,
            username: c.username.clone(),
            password: c
                .read_password()
                .map_err(MqttError::Password)?
                .map(crate::config::Secret),
            client_id: if c.client_id.is_empty() {
                format!("wagate-{id}")
            } else {
                c.client_id.clone()
            },
            topics: Topics {
                base: if c.base_topic.is_empty() {
                    format!("wagate/{id}")
                } else {
                    c.base_topic.clone()
                },
                prefix: c.discovery_prefix.clone(),
                device_id: id,
            },
            discovery: c.discovery,
            commands: c.commands,
            keep_alive: Duration::from_secs(u64::from(c.keep_alive_secs)),
            notify: c.notify.clone(),
            retries_ms,
            backlog_max_age: Duration::from_secs(u64::from(webhooks.retention_days) * 86_400),
            backlog_max: u64::from(webhooks.retention_max_deliveries),
            backlog_max_bytes: u64::from(webhooks.retention_max_mb) * 1024 * 1024,
        })
    }

    /// `mqtt[s]://host:port`, for logs and health (never credentials).
    pub fn broker(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_start(false)
            .set_session_expiry_interval(Some(SESSION_EXPIRY_SECS))
            // Commands are acked once they are handled (durable), and at most this many
            // wait for it at a time.
            .set_manual_acks(true)
            .set_receive_maximum(Some(16))
            .set_max_packet_size(Some(16 * 1024 * 1024))
            .set_connection_timeout(10)
            .set_last_will(LastWill::new(
                self.topics.availability(),
                "offline",
                QoS::AtLeastOnce,
                true,
                None,
            ));
        if !self.username.is_empty() || self.password.is_some() {
            let password = self.password.as_ref().map(|p| p.0.clone());
            o.set_credentials(&self.username, password.unwrap_or_default());
        }
        if let Some(trust) = &self.tls {
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(tls::client_config(trust)?),
            ));
        }
        Ok(o)
    }
}

/// What the MQTT link is doing, for health, metrics and the dashboard.
#[derive(Debug, Default)]
pub struct Status {
    pub connected: AtomicBool,
    /// Connections made (the first and every reconnect).
    pub connects: AtomicU64,
    /// Events the broker acknowledged.
    pub published: AtomicU64,
    /// Events the broker refused (a PUBACK reason code); they follow the retry schedule.
    pub refused: AtomicU64,
    /// Commands taken, and those answered with an error.
    pub commands: AtomicU64,
    pub command_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Status {
    /// Why the last connection attempt failed or the link was lost, while it is down.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The publish waiting for its PUBACK. One QoS 1 publish is in flight at a time, so the
/// next outgoing packet id is its own, except retransmissions of publishes given up when the
/// link was lost (`stale`), which the client library resends when the broker kept the
/// session.
#[derive(Default)]
struct Acks {
    waiter: Option<Waiter>,
    stale: HashSet<u16>,
    /// Given-up publishes not yet numbered (still in the client's queue).
    stale_unnumbered: u32,
}

struct Waiter {
    pkid: Option<u16>,
    tx: oneshot::Sender<Result<(), String>>,
}

impl Acks {
    fn give_up(&mut self) {
        if let Some(w) = self.waiter.take() {
            match w.pkid {
                Some(p) => {
                    self.stale.insert(p);
                }
                None => self.stale_unnumbered += 1,
            }
        }
    }
}

/// The connection went away before the broker acknowledged a publish.
#[derive(Debug)]
struct Down;

/// One session as Home Assistant sees it.
#[derive(Debug, Clone, Default)]
struct View {
    state: String,
    connected: bool,
    phone: Option<String>,
    reason: Option<String>,
    queue_depth: u64,
    sent_today: u64,
    failed_today: u64,
    /// The QR payload while the session waits for a scan.
    qr: Option<String>,
    announced: bool,
    status_dirty: bool,
    qr_dirty: bool,
}

#[derive(Debug, Default)]
struct Views {
    sessions: BTreeMap<String, View>,
    /// Sessions deleted whose device and retained topics are still to be cleared.
    removed: Vec<String>,
    /// Retained device configs of sessions that no longer exist, to clear.
    stale_configs: Vec<String>,
    /// Local midnight (unix ms) the day counts start at; 0 until they are counted (no state
    /// goes out before: a count that falls back to 0 looks like a reset to Home Assistant).
    day: i64,
    /// When the day was last counted from the event log: events older than this are in it.
    counted_at: i64,
}

impl Views {
    fn all_dirty(&mut self, announce: bool) {
        for v in self.sessions.values_mut() {
            v.status_dirty = true;
            v.qr_dirty = true;
            if announce {
                v.announced = false;
            }
        }
    }
}

struct Inner {
    settings: Settings,
    store: Store,
    mgr: SessionManager,
    clock: Clock,
    client: AsyncClient,
    status: Status,
    up: watch::Sender<bool>,
    acks: Mutex<Acks>,
    publish_lock: tokio::sync::Mutex<()>,
    /// Drop the connection and reconnect (a PUBACK that never came).
    kick: Notify,
    /// The broker's Maximum Packet Size from its CONNACK; 0 when it set none.
    broker_max_packet: std::sync::atomic::AtomicU32,
    wake: Notify,
    states: Notify,
    /// A session the views do not know appeared on the bus: list the sessions again.
    refresh: Notify,
    views: Mutex<Views>,
    stop: AtomicBool,
}

/// The running MQTT link. Cloning shares it; [`Mqtt::stop`] ends it.
#[derive(Clone)]
pub struct Mqtt {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mqtt")
            .field("broker", &self.inner.settings.broker())
            .finish_non_exhaustive()
    }
}

/// Local midnight before `now_ms` (UTC midnight where the local time is unknown).
fn local_midnight(now_ms: i64) -> i64 {
    let secs = now_ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r and mktime read and write only the values passed.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return now_ms - now_ms.rem_euclid(86_400_000);
        }
        tm.tm_hour = 0;
        tm.tm_min = 0;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        let t = libc::mktime(&mut tm);
        if t == -1 {
            return now_ms - now_ms.rem_euclid(86_400_000);
        }
        // time_t is 32 bits on 32-bit ARM.
        #[allow(clippy::useless_conversion)]
        let t = i64::from(t);
        t * 1000
    }
}

impl Mqtt {
    /// Connect to the broker (in the background: a broker that is away is retried), and start
    /// publishing the MQTT endpoint's deliveries, the sessions' states and discovery.
    pub fn spawn(
        settings: Settings,
        store: Store,
        mgr: SessionManager,
        clock: Clock,
    ) -> Result<Mqtt, MqttError> {
        let (client, eventloop) = AsyncClient::new(settings.options()?, 64);
        let (up, _) = watch::channel(false);
        let mqtt = Mqtt {
            inner: Arc::new(Inner {
                settings,
                store,
                mgr: mgr.clone(),
                clock,
                client,
                status: Status::default(),
                up,
                acks: Mutex::new(Acks::default()),
                publish_lock: tokio::sync::Mutex::new(()),
                kick: Notify::new(),
                broker_max_packet: std::sync::atomic::AtomicU32::new(0),
                wake: Notify::new(),
                states: Notify::new(),
                refresh: Notify::new(),
                views: Mutex::new(Views::default()),
                stop: AtomicBool::new(false),
            }),
        };
        tracing::info!(
            broker = %mqtt.inner.settings.broker(),
            base = %mqtt.inner.settings.topics.base,
            "MQTT on"
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let m = mqtt.clone();
        tokio::spawn(async move { m.drive(eventloop, cmd_tx).await });
        let m = mqtt.clone();
        tokio::spawn(async move { m.commands(cmd_rx).await });
        let m = mqtt.clone();
        tokio::spawn(async move { m.deliver().await });
        let m = mqtt.clone();
        let rx = mgr.bus().subscribe();
        tokio::spawn(async move { m.watch_bus(rx).await });
        let m = mqtt.clone();
        tokio::spawn(async move { m.publish_states().await });
        let m = mqtt.clone();
        tokio::spawn(async move { m.bound_backlog().await });
        Ok(mqtt)
    }

    pub fn status(&self) -> &Status {
        &self.inner.status
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn connected(&self) -> bool {
        *self.inner.up.borrow()
    }

    /// Events waiting for the broker.
    pub async fn backlog(&self) -> Result<u64, StoreError> {
        self.inner
            .store
            .read(|t| outbox::scheduled_count(t, outbox::MQTT_ENDPOINT))
            .await
    }

    /// Say `offline` and disconnect (best effort, a few seconds at most).
    pub async fn stop(&self) {
        if self.connected() {
            let topic = self.inner.settings.topics.availability();
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.publish(topic, b"offline".to_vec(), true, None),
            )
            .await;
        }
        self.inner.stop.store(true, Ordering::Release);
        self.inner.wake.notify_one();
        self.inner.states.notify_one();
        let _ = self.inner.client.try_disconnect();
        // The event loop sends the DISCONNECT and ends.
        let mut up = self.inner.up.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(2), up.wait_for(|u| !*u)).await;
    }

    fn acks(&self) -> MutexGuard<'_, Acks> {
        lock(&self.inner.acks)
    }

    fn views(&self) -> MutexGuard<'_, Views> {
        lock(&self.inner.views)
    }

    fn stopped(&self) -> bool {
        self.inner.stop.load(Ordering::Acquire)
    }

    /// Publish at QoS 1 and wait for the PUBACK: `Ok(Ok(()))` accepted, `Ok(Err(reason))`
    /// refused by the broker, `Err(Down)` the link went away first.
    async fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
        props: Option<PublishProperties>,
    ) -> Result<Result<(), String>, Down> {
        let _one = self.inner.publish_lock.lock().await;
        let rx = {
            // The waiter is set and the request queued under the lock the event loop takes
            // to number it and to give it up when the link goes: no request slips between.
            let mut a = self.acks();
            if !self.connected() {
                return Err(Down);
            }
            let client = &self.inner.client;
            let sent = match props {
                Some(p) => {
                    client.try_publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, p)
                }
                None => client.try_publish(topic, QoS::AtLeastOnce, retain, payload),
            };
            if sent.is_err() {
                return Err(Down);
            }
            let (tx, rx) = oneshot::channel();
            a.waiter = Some(Waiter { pkid: None, tx });
            rx
        };
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(Down),
            Err(_) => {
                // No PUBACK: the link is as good as dead; reconnect (the publish is resent
                // with the broker's session, or given up with a new one).
                tracing::warn!(
                    "MQTT: no PUBACK in {} s; reconnecting",
                    ACK_TIMEOUT.as_secs()
                );
                self.inner.kick.notify_one();
                Err(Down)
            }
        }
    }

    /// The link is gone (an error, or a kick): nothing more goes out on it, the publish in
    /// flight is given up, and what the client still holds for it moves to its resend queue
    /// (cleared if the broker answers with a new session).
    fn link_lost(&self, el: &mut EventLoop) -> bool {
        let mut a = self.acks();
        let was = self.inner.status.connected.swap(false, Ordering::AcqRel);
        self.inner.up.send_replace(false);
        a.give_up();
        el.clean();
        was
    }

    /// Run the client's event loop: connect and reconnect, match PUBACKs to the publish in
    /// flight, and hand incoming commands over.
    async fn drive(self, mut el: EventLoop, cmd_tx: mpsc::UnboundedSender<Publish>) {
        let mut backoff = Duration::from_secs(1);
        let mut last_warned: Option<Instant> = None;
        loop {
            if self.stopped() && !self.connected() {
                break;
            }
            let polled = tokio::select! {
                r = el.poll() => Some(r),
                _ = self.inner.kick.notified() => None,
            };
            let event = match polled {
                Some(r) => r,
                None => {
                    self.link_lost(&mut el);
                    *lock(&self.inner.status.last_error) = Some("no PUBACK in time".into());
                    continue;
                }
            };
            match event {
                Ok(MqttEvent::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_secs(1);
                    let max = ack
                        .properties
                        .as_ref()
                        .and_then(|p| p.max_packet_size)
                        .unwrap_or(0);
                    self.inner.broker_max_packet.store(max, Ordering::Release);
                    {
                        let mut a = self.acks();
                        if !ack.session_present {
                            // A new session: the client dropped what it would have resent.
                            a.stale.clear();
                            a.stale_unnumbered = 0;
                        }
                        self.inner.status.connected.store(true, Ordering::Release);
                        self.inner.up.send_replace(true);
                    }
                    *lock(&self.inner.status.last_error) = None;
                    self.inner.status.connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(broker = %self.inner.settings.broker(), "MQTT connected");
                    let m = self.clone();
                    tokio::spawn(async move { m.on_connect().await });
                }
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let _ = cmd_tx.send(p);
                }
                Ok(MqttEvent::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                    let mut a = self.acks();
                    if a.stale.contains(&pkid) {
                        // A resend of a given-up publish.
                    } else if a.stale_unnumbered > 0 {
                        a.stale_unnumbered -= 1;
                        a.stale.insert(pkid);
                    } else if let Some(w) = a.waiter.as_mut()
                        && w.pkid.is_none()
                    {
                        w.pkid = Some(pkid);
                    }
                }
                Ok(MqttEvent::Incoming(Packet::PubAck(ack))) => {
                    let mut a = self.acks();
                    if a.stale.remove(&ack.pkid) {
                        continue;
                    }
                    if a.waiter.as_ref().and_then(|w| w.pkid) == Some(ack.pkid)
                        && let Some(w) = a.waiter.take()
                    {
                        let r = match ack.reason {
                            PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Ok(()),
                            other => Err(format!("the broker refused it: {other:?}")),
                        };
                        let _ = w.tx.send(r);
                    }
                }
                // A clean stop: the DISCONNECT went out.
                Ok(MqttEvent::Outgoing(Outgoing::Disconnect)) if self.stopped() => break,
                Ok(_) => {}
                Err(e) => {
                    let was = self.link_lost(&mut el);
                    if self.stopped() {
                        break;
                    }
                    let msg = e.to_string();
                    if was {
                        tracing::warn!(error = %msg, "MQTT connection lost; reconnecting");
                    } else if last_warned.is_none_or(|t| t.elapsed() >= Duration::from_secs(300)) {
                        tracing::warn!(broker = %self.inner.settings.broker(), error = %msg, "MQTT broker unreachable; retrying");
                        last_warned = Some(Instant::now());
                    }
                    *lock(&self.inner.status.last_error) = Some(msg);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        self.inner.up.send_replace(false);
        self.inner.status.connected.store(false, Ordering::Release);
    }

    /// After every connect: subscribe, say `online`, announce every session again (the
    /// broker may have lost its retained messages), and let the backlog go.
    async fn on_connect(&self) {
        let s = &self.inner.settings;
        let t = &s.topics;
        let mut subs = Vec::new();
        if s.commands {
            subs.push(format!("{}/+/send/+", t.base));
            subs.push(format!("{}/+/notify/+", t.base));
            subs.push(format!("{}/+/pair", t.base));
        }
        if s.discovery {
            subs.push(format!("{}/status", t.prefix));
        }
        let mut qos0 = Vec::new();
        if s.discovery {
            // The retained device configs: one of this box's whose session is gone (deleted
            // while the broker was away) is cleared.
            qos0.push(format!("{}/device/+/config", t.prefix));
        }
        let all = subs
            .into_iter()
            .map(|t| (t, QoS::AtLeastOnce))
            .chain(qos0.into_iter().map(|t| (t, QoS::AtMostOnce)));
        for (topic, qos) in all {
            if let Err(e) = self.inner.client.subscribe(topic.clone(), qos).await {
                tracing::warn!(topic, error = %e, "MQTT: cannot subscribe");
            }
        }
        let _ = self
            .publish(t.availability(), b"online".to_vec(), true, None)
            .await;
        self.refresh_sessions().await;
        self.views().all_dirty(true);
        self.inner.states.notify_one();
        self.inner.wake.notify_one();
    }

    // -----------------------------------------------------------------------------------------
    // Events out
    // -----------------------------------------------------------------------------------------

    /// Publish the MQTT endpoint's due deliveries while connected, in order.
    async fn deliver(self) {
        let mut up = self.inner.up.subscribe();
        while !self.stopped() {
            if !*up.borrow_and_update() {
                let _ = up.changed().await;
                continue;
            }
            match self.deliver_batch().await {
                Ok(true) => {}
                Ok(false) => {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), self.inner.wake.notified())
                            .await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "MQTT: cannot read the outbox");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }

    /// One batch: `Ok(true)` when it published something (look again at once).
    async fn deliver_batch(&self) -> Result<bool, StoreError> {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let due = inner
            .store
            .read(move |t| outbox::due(t, outbox::MQTT_ENDPOINT, now, BATCH))
            .await?;
        if due.is_empty() {
            return Ok(false);
        }
        let mut steps = Vec::with_capacity(due.len());
        for d in due {
            let event_id = d.event_id.clone();
            let body = inner
                .store
                .read(move |t| outbox::event_body(t, &event_id))
                .await?;
            let Some(body) = body else {
                steps.push((d, Step::Expire("its event is gone")));
                continue;
            };
            if let Ok(event) = serde_json::from_slice::<Event>(&body)
                && outbox::expired_at(&event, now).is_some()
            {
                steps.push((d, Step::Expire("the QR code expired before delivery")));
                continue;
            }
            let topic = inner.settings.topics.event(&d.session, &d.event_type);
            // A broker that states a Maximum Packet Size refuses more (the client would drop
            // the link and resend it for ever): such an event cannot go out, and must not
            // hold up the ones behind it.
            let max = inner.broker_max_packet.load(Ordering::Acquire) as usize;
            if max > 0 && topic.len() + body.len() + d.id.len() + 96 > max {
                tracing::warn!(delivery = %d.id, bytes = body.len(), max, "MQTT: an event is larger than the broker accepts; dropped");
                steps.push((
                    d,
                    Step::Expire("larger than the broker's maximum packet size"),
                ));
                continue;
            }
            let props = PublishProperties {
                content_type: Some("application/json".into()),
                payload_format_indicator: Some(1),
                user_properties: vec![("delivery-id".into(), d.id.clone())],
                ..Default::default()
            };
            let at = inner.clock.now_ms();
            let started = Instant::now();
            let r = self.publish(topic, body, false, Some(props)).await;
            let attempt = |error| outbox::AttemptRecord {
                at,
                status_code: None,
                latency_ms: started.elapsed().as_millis() as u64,
                response: None,
                error,
            };
            match r {
                Ok(Ok(())) => steps.push((d, Step::Acked(attempt(None)))),
                Ok(Err(why)) => steps.push((d, Step::Refused(attempt(Some(why))))),
                Err(Down) => break,
            }
        }
        let published = !steps.is_empty();
        self.record(steps).await?;
        Ok(published)
    }

    /// Every ten minutes (and at start): events that waited for the broker longer than the
    /// retention, or beyond its count, end `expired`, so an outage of weeks cannot fill the
    /// card.
    async fn bound_backlog(self) {
        let s = &self.inner.settings;
        let max_age = i64::try_from(s.backlog_max_age.as_millis()).unwrap_or(i64::MAX);
        let (max, max_bytes) = (s.backlog_max, s.backlog_max_bytes);
        while !self.stopped() {
            let now = self.inner.clock.now_ms();
            // Read first: most rounds find nothing waiting, and a write is an fsync.
            let waiting = self.backlog().await.unwrap_or(1);
            let r = if waiting == 0 {
                Ok(0)
            } else {
                self.inner
                    .store
                    .write(move |t| {
                        outbox::expire_backlog(
                            t,
                            outbox::MQTT_ENDPOINT,
                            now.saturating_sub(max_age),
                            max,
                            max_bytes,
                            "waited for the MQTT broker beyond the retention",
                            now,
                        )
                    })
                    .await
            };
            match r {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    events = n,
                    "MQTT: events waited for the broker beyond the retention and expired"
                ),
                Err(e) => tracing::warn!(error = %e, "MQTT: cannot bound the backlog"),
            }
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
    }

    async fn record(&self, steps: Vec<(outbox::Delivery, Step)>) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let retries = self.inner.settings.retries_ms.clone();
        let now = self.inner.clock.now_ms();
        let (mut acked, mut refused) = (0u64, 0u64);
        for (_, s) in &steps {
            match s {
                Step::Acked(_) => acked += 1,
                Step::Refused(a) => {
                    refused += 1;
                    tracing::warn!(error = ?a.error, "MQTT: the broker refused an event; it is retried later");
                }
                Step::Expire(_) => {}
            }
        }
        self.inner
            .store
            .write(move |t| {
                for (d, step) in steps.iter().cloned() {
                    match step {
                        Step::Acked(a) => {
                            outbox::acknowledged(t, &d.id, a, now)?;
                        }
                        Step::Refused(a) => {
                            let outcome = outbox::Outcome {
                                attempt: a,
                                retry_after_ms: None,
                            };
                            outbox::attempted(t, &d.id, outcome, &retries, now)?;
                        }
                        Step::Expire(why) => {
                            outbox::expire(t, &d.id, why, now)?;
                        }
                    }
                }
                Ok(())
            })
            .await?;
        let st = &self.inner.status;
        st.published.fetch_add(acked, Ordering::Relaxed);
        st.refused.fetch_add(refused, Ordering::Relaxed);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Commands in
    // -----------------------------------------------------------------------------------------

    async fn commands(self, mut rx: mpsc::UnboundedReceiver<Publish>) {
        while let Some(p) = rx.recv().await {
            self.command(&p).await;
            // Acked only now: a command is in the durable queue (or answered) before the
            // broker forgets it.
            if let Err(e) = self.inner.client.ack(&p).await {
                tracing::debug!(error = %e, "MQTT: cannot ack a command");
            }
        }
    }

    async fn command(&self, p: &Publish) {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let t = &self.inner.settings.topics;
        if self.inner.settings.discovery && topic == format!("{}/status", t.prefix) {
            if p.payload.as_ref() == b"online" {
                self.home_assistant_online();
            }
            return;
        }
        if self.inner.settings.discovery
            && !p.payload.is_empty()
            && let Some(object) = topic
                .strip_prefix(&format!("{}/device/", t.prefix))
                .and_then(|r| r.strip_suffix("/config"))
        {
            self.seen_config(object, &topic).await;
            return;
        }
        if !self.inner.settings.commands {
            return;
        }
        let Some(rest) = topic
            .strip_prefix(t.base.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if matches!(
            parts.as_slice(),
            [_, "send", _] | [_, "notify", _] | [_, "pair"]
        ) {
            self.inner.status.commands.fetch_add(1, Ordering::Relaxed);
        }
        match parts.as_slice() {
            [sid, "send", kind] => self.send_command(sid, kind, p).await,
            [sid, "notify", target] => self.notify_command(sid, target, p).await,
            [sid, "pair"] => self.pair_command(sid, p).await,
            _ => {}
        }
    }

    /// Answer a command: on its response topic with its correlation data (MQTT 5), else on
    /// `<base>/<session>/result`.
    async fn answer(&self, sid: &str, p: &Publish, mut body: Value) {
        let props = p.properties.as_ref();
        let topic = props
            .and_then(|pp| pp.response_topic.clone())
            .filter(|t| !t.is_empty() && !t.contains(['+', '#']))
            .unwrap_or_else(|| self.inner.settings.topics.result(sid));
        if body.get("error").is_some() {
            self.inner
                .status
                .command_errors
                .fetch_add(1, Ordering::Relaxed);
        }
        if let Some(o) = body.as_object_mut() {
            o.insert("session".into(), json!(sid));
        }
        let out = PublishProperties {
            correlation_data: props.and_then(|pp| pp.correlation_data.clone()),
            content_type: Some("application/json".into()),
            payload_format_indicator: Some(1),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        if self.publish(topic, bytes, false, Some(out)).await.is_err() {
            tracing::warn!(
                session = sid,
                "MQTT: the answer to a command was not acknowledged"
            );
        }
    }

    async fn send_command(&self, sid: &str, kind: &str, p: &Publish) {
        let correlation = p
            .properties
            .as_ref()
            .and_then(|pp| pp.correlation_data.as_ref())
            .map(correlation_text);
        let mut request_id = correlation;
        let result = async {
            let bad_id = || {
                ApiError::bad_request(
                    "invalid_request_id",
                    format!(
                        "request_id (or the correlation data, as text or hex) must be 1-{MAX_REQUEST_ID} visible ASCII characters"
                    ),
                )
            };
            if request_id.as_deref().is_some_and(|r| !valid_request_id(r)) {
                return Err(bad_id());
            }
            let mut fields: Value = crate::net::api::error::parse_json(&p.payload)?;
            if let Some(v) = fields.as_object_mut().and_then(|o| o.remove("request_id")) {
                let id = match v {
                    Value::String(s) if valid_request_id(&s) => s,
                    _ => return Err(bad_id()),
                };
                request_id.get_or_insert(id);
            }
            self.inner.mgr.get(sid).await?;
            queue_message(&self.inner.mgr, sid, kind, &fields, None, request_id.clone()).await
        }
        .await;
        let mut body = match result {
            Ok(done) => json!({
                "id": done.record.id,
                "status": accepted_status(&done.record),
                "replayed": done.replayed,
            }),
            Err(e) => error_body(&e),
        };
        if let Some(o) = body.as_object_mut() {
            o.insert("request_id".into(), json!(request_id));
            o.insert("kind".into(), json!(kind));
        }
        self.answer(sid, p, body).await;
    }

    async fn notify_command(&self, sid: &str, target: &str, p: &Publish) {
        let targets = ha::notify_targets(&self.inner.settings.notify, sid);
        let result = async {
            let (_, t) = targets.iter().find(|(s, _)| s == target).ok_or_else(|| {
                ApiError::not_found(
                    "notify_target_not_found",
                    format!("no [[mqtt.notify]] recipient '{target}' for session '{sid}'"),
                )
            })?;
            let text = std::str::from_utf8(&p.payload).map_err(|_| {
                ApiError::bad_request("invalid_text", "the message is not UTF-8 text")
            })?;
            self.inner.mgr.get(sid).await?;
            let fields = json!({ "to": t.to, "text": text });
            queue_message(&self.inner.mgr, sid, "text", &fields, None, None).await
        }
        .await;
        let body = match result {
            Ok(done) => json!({
                "id": done.record.id,
                "status": accepted_status(&done.record),
                "kind": "text",
                "notify": target,
            }),
            Err(e) => {
                tracing::warn!(session = sid, notify = target, error = %e, "MQTT notify refused");
                let mut b = error_body(&e);
                if let Some(o) = b.as_object_mut() {
                    o.insert("notify".into(), json!(target));
                }
                b
            }
        };
        self.answer(sid, p, body).await;
    }

    async fn pair_command(&self, sid: &str, p: &Publish) {
        let body = match self.inner.mgr.start(sid).await {
            Ok(info) => json!({ "pair": true, "state": info.state.name() }),
            Err(e) => error_body(&ApiError::from(e)),
        };
        self.answer(sid, p, body).await;
    }

    // -----------------------------------------------------------------------------------------
    // Home Assistant: states, QR, discovery
    // -----------------------------------------------------------------------------------------

    /// A retained device config on the broker: if it is one of this box's and no session has
    /// it any more, clear it (a session deleted while the broker was away).
    async fn seen_config(&self, object: &str, topic: &str) {
        let t = &self.inner.settings.topics;
        if !object.starts_with(&t.object_id("")) {
            return;
        }
        let Ok(list) = self.inner.mgr.list().await else {
            return;
        };
        if list.iter().any(|i| t.object_id(&i.id) == object) {
            return;
        }
        tracing::info!(topic, "MQTT: clearing the device of a session that is gone");
        self.views().stale_configs.push(topic.to_string());
        self.inner.states.notify_one();
    }

    fn home_assistant_online(&self) {
        // Home Assistant restarted: announce again after a short random delay (its docs ask
        // for one, so a broker is not flooded by every device at once).
        let m = self.clone();
        tokio::spawn(async move {
            let ms = rand::random_range(500..3000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            m.views().all_dirty(true);
            m.inner.states.notify_one();
        });
    }

    /// Follow the bus: states, queue depths and the day's sent / failed counts.
    async fn watch_bus(self, mut rx: tokio::sync::broadcast::Receiver<Notice>) {
        use tokio::sync::broadcast::error::RecvError;
        self.refresh_sessions().await;
        self.count_today().await;
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        while !self.stopped() {
            tokio::select! {
                notice = rx.recv() => match notice {
                    Ok(n) => self.apply(n),
                    Err(RecvError::Lagged(_)) => {
                        self.refresh_sessions().await;
                        self.count_today().await;
                        self.inner.wake.notify_one();
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = self.inner.refresh.notified() => self.refresh_sessions().await,
                _ = tick.tick() => {
                    self.refresh_sessions().await;
                    let midnight = local_midnight(self.inner.clock.now_ms());
                    if self.views().day != midnight {
                        self.count_today().await;
                    }
                }
            }
            self.inner.states.notify_one();
        }
    }

    /// Follow a notice. Only sessions the views know are changed: a session appears or goes
    /// only through [`Mqtt::refresh_sessions`] (a late notice of a deleted session must not
    /// bring its device back).
    fn apply(&self, notice: Notice) {
        let mut views = self.views();
        let counted_at = views.counted_at;
        let session = match &notice {
            Notice::Event(ev) => ev.session.clone(),
            Notice::State { session, .. } | Notice::Queue { session, .. } => session.clone(),
            Notice::Deliveries { .. } => return,
        };
        if matches!(notice, Notice::Event(_)) {
            self.inner.wake.notify_one();
        }
        let Some(v) = views.sessions.get_mut(&session) else {
            if !matches!(notice, Notice::Event(_)) {
                self.inner.refresh.notify_one();
            }
            return;
        };
        match notice {
            Notice::Event(ev) => {
                if ev.timestamp < counted_at {
                    return; // counted from the event log already
                }
                match ev.type_name() {
                    "message.sent" => v.sent_today += 1,
                    "message.failed" => v.failed_today += 1,
                    _ => return,
                }
                v.status_dirty = true;
            }
            Notice::State { state, .. } => set_state(v, &state),
            Notice::Queue { depth, .. } => {
                v.queue_depth = depth;
                v.status_dirty = true;
            }
            Notice::Deliveries { .. } => {}
        }
    }

    /// Take new sessions in and mark deleted ones for removal.
    async fn refresh_sessions(&self) {
        let Ok(list) = self.inner.mgr.list().await else {
            return;
        };
        // The manager's state and the store's depth are the truth: a notice the bus dropped
        // (it lags under bursts) must not leave Home Assistant behind.
        let mut depths = Vec::new();
        for info in &list {
            let id = info.id.clone();
            let depth = self
                .inner
                .store
                .read(move |t| crate::store::queue::depth(t, &id))
                .await
                .ok();
            depths.push(depth);
        }
        let mut views = self.views();
        for (info, depth) in list.iter().zip(depths) {
            let v = views.sessions.entry(info.id.clone()).or_default();
            if v.phone != info.phone {
                v.phone = info.phone.clone();
                v.announced = false;
                v.status_dirty = true;
            }
            let mut fresh = v.clone();
            set_state(&mut fresh, &info.state);
            if v.state.is_empty()
                || fresh.state != v.state
                || fresh.qr != v.qr
                || fresh.reason != v.reason
            {
                set_state(v, &info.state);
            }
            if let Some(depth) = depth
                && depth != v.queue_depth
            {
                v.queue_depth = depth;
                v.status_dirty = true;
            }
        }
        let gone: Vec<String> = views
            .sessions
            .keys()
            .filter(|id| !list.iter().any(|i| &i.id == *id))
            .cloned()
            .collect();
        for id in gone {
            views.sessions.remove(&id);
            views.removed.push(id);
        }
    }

    /// Count today's sent and failed messages from the event log (at start and each
    /// midnight).
    async fn count_today(&self) {
        let started = self.inner.clock.now_ms();
        let midnight = local_midnight(started);
        let counts = self
            .inner
            .store
            .read(move |t| outbox::sent_failed_since(t, midnight))
            .await;
        let mut views = self.views();
        views.day = midnight;
        views.counted_at = started;
        for v in views.sessions.values_mut() {
            v.sent_today = 0;
            v.failed_today = 0;
            v.status_dirty = true;
        }
        match counts {
            Ok(counts) => {
                for (session, sent, failed) in counts {
                    if let Some(v) = views.sessions.get_mut(&session) {
                        v.sent_today = sent;
                        v.failed_today = failed;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "MQTT: cannot count today's messages"),
        }
    }

    /// Publish what changed: removals, discovery, states and QR codes.
    async fn publish_states(self) {
        while !self.stopped() {
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.inner.states.notified()).await;
            if !self.connected() {
                continue;
            }
            if self.publish_changes().await.is_err() {
                continue;
            }
        }
    }

    async fn publish_changes(&self) -> Result<(), Down> {
        let s = &self.inner.settings;
        let t = &s.topics;
        if self.views().day == 0 {
            return Ok(()); // not counted yet
        }
        let stale = std::mem::take(&mut self.views().stale_configs);
        for (i, topic) in stale.iter().enumerate() {
            if self.retain(topic.clone(), Vec::new()).await.is_err() {
                self.views()
                    .stale_configs
                    .extend(stale[i..].iter().cloned());
                return Err(Down);
            }
        }
        let removed = std::mem::take(&mut self.views().removed);
        for (i, sid) in removed.iter().enumerate() {
            let r = async {
                if s.discovery {
                    self.retain(t.config(sid), Vec::new()).await?;
                }
                self.retain(t.status(sid), Vec::new()).await?;
                self.retain(t.qr(sid), Vec::new()).await
            }
            .await;
            if r.is_err() {
                self.views().removed.extend(removed[i..].iter().cloned());
                return Err(Down);
            }
            tracing::info!(session = %sid, "MQTT: session removed from Home Assistant");
        }
        let sids: Vec<String> = self.views().sessions.keys().cloned().collect();
        for sid in sids {
            // Take what is to publish and clear its flags in one step: a change that comes
            // while it is published sets them again and goes out next round.
            let taken = {
                let mut views = self.views();
                let Some(v) = views.sessions.get_mut(&sid) else {
                    continue;
                };
                if v.state.is_empty() || (v.announced && !v.status_dirty && !v.qr_dirty) {
                    continue;
                }
                let snapshot = v.clone();
                v.announced = true;
                v.status_dirty = false;
                v.qr_dirty = false;
                snapshot
            };
            if let Err(down) = self.publish_session(&sid, &taken).await {
                self.mark(&sid, |v| {
                    v.announced &= taken.announced;
                    v.status_dirty |= taken.status_dirty || !taken.announced;
                    v.qr_dirty |= taken.qr_dirty || !taken.announced;
                });
                return Err(down);
            }
        }
        Ok(())
    }

    /// Publish what a session's snapshot says is due: its discovery (when not announced), its
    /// status and its QR image.
    async fn publish_session(&self, sid: &str, v: &View) -> Result<(), Down> {
        let s = &self.inner.settings;
        let t = &s.topics;
        let fresh = !v.announced;
        if fresh && s.discovery {
            let config = device_config(t, sid, v.phone.as_deref(), &s.notify, s.commands);
            let bytes = serde_json::to_vec(&config).unwrap_or_default();
            self.retain(t.config(sid), bytes).await?;
        }
        if v.status_dirty || fresh {
            let status = json!({
                "state": v.state,
                "connected": v.connected,
                "phone": v.phone,
                "reason": v.reason,
                "queue_depth": v.queue_depth,
                "sent_today": v.sent_today,
                "failed_today": v.failed_today,
            });
            let bytes = serde_json::to_vec(&status).unwrap_or_default();
            self.retain(t.status(sid), bytes).await?;
        }
        if v.qr_dirty || fresh {
            self.retain(t.qr(sid), qr_image(v.qr.as_deref())).await?;
        }
        Ok(())
    }

    /// Publish a retained state (an empty payload clears it); a refusal is logged, not
    /// retried (the next change publishes again).
    async fn retain(&self, topic: String, payload: Vec<u8>) -> Result<(), Down> {
        if let Err(why) = self.publish(topic.clone(), payload, true, None).await? {
            tracing::warn!(topic, why, "MQTT: the broker refused a retained message");
        }
        Ok(())
    }

    fn mark(&self, sid: &str, f: impl FnOnce(&mut View)) {
        if let Some(v) = self.views().sessions.get_mut(sid) {
            f(v);
        }
    }
}

/// A correlation id as text: UTF-8 as it is, other bytes in hex.
fn correlation_text(b: &Bytes) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn valid_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_REQUEST_ID && s.bytes().all(|b| b.is_ascii_graphic())
}

/// An API error as a command's answer: the API's `error` object and its status code.
fn error_body(e: &ApiError) -> Value {
    json!({
        "error": { "code": e.code, "message": e.message },
        "status_code": e.status.as_u16(),
    })
}

fn set_state(v: &mut View, state: &SessionState) {
    v.state = state.name().to_string();
    v.connected = matches!(state, SessionState::Connected { .. });
    v.reason = match state {
        SessionState::Disconnected { reason, .. } => Some(reason.as_str().to_string()),
        SessionState::Failed { reason, .. } => Some(reason.as_str().to_string()),
        _ => None,
    };
    let qr = match state {
        SessionState::Qr { code, .. } if !code.is_empty() => Some(code.clone()),
        _ => None,
    };
    if qr != v.qr {
        v.qr = qr;
        v.qr_dirty = true;
    }
    v.status_dirty = true;
}

/// The pairing QR as PNG, or a blank square while there is none (Home Assistant's image
/// entity shows an empty payload as a broken image, so the topic always holds a picture).
fn qr_image(code: Option<&str>) -> Vec<u8> {
    if let Some(code) = code {
        match crate::display::qr::qr_png(code, 6) {
            Ok(png) => return png,
            Err(e) => tracing::warn!(error = %e, "MQTT: cannot draw the QR code"),
        }
    }
    blank_png()
}

fn blank_png() -> Vec<u8> {
    const SIDE: u32 = 64;
    let row = (SIDE as usize).div_ceil(8);
    let pixels = vec![0xffu8; row * SIDE as usize];
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, SIDE, SIDE);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::One);
    let written = enc
        .write_header()
        .and_then(|mut w| w.write_image_data(&pixels).and_then(|_| w.finish()));
    if written.is_err() {
        return Vec::new();
    }
    out
}

#[derive(Clone)]
enum Step {
    Acked(outbox::AttemptRecord),
    Refused(outbox::AttemptRecord),
    Expire(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_give_scheme_host_and_port() {
        assert_eq!(
            parse_url("mqtt://broker.lan").unwrap(),
            (false, "broker.lan".into(), 1883)
        );
        assert_eq!(
            parse_url("MQTTS://10.0.0.2:8884/").unwrap(),
            (true, "10.0.0.2".into(), 8884)
        );
        assert_eq!(
            parse_url("mqtt://[fd00::1]:1884").unwrap(),
            (false, "fd00::1".into(), 1884)
        );
        for bad in [
            "http://x",
            "mqtt://",
            "mqtt://u:p@host",
            "mqtt://host/path",
            "mqtt://host:port",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_blank_image_is_a_png() {
        let png = blank_png();
        assert_eq!(&png[1..4], b"PNG");
        let qr = qr_image(Some("2@abc,def,ghi"));
        assert_eq!(&qr[1..4], b"PNG");
        assert_ne!(qr, png);
    }

    #[test]
    fn midnight_is_at_most_a_day_back() {
        let now = 1_765_000_000_000;
        let m = local_midnight(now);
        assert!(m <= now && now - m < 25 * 3600 * 1000, "{m}");
        assert_eq!(local_midnight(m + 1), m);
    }
}
