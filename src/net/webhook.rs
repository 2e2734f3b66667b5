//! The webhook forwarder: takes due deliveries from the outbox, signs and posts them, and
//! records every attempt.
//!
//! One task schedules; each endpoint with due deliveries gets one worker on a blocking thread
//! (ureq is blocking) that posts them one after the other, earliest first, so an endpoint
//! sees first attempts in event order, and a slow or dead endpoint holds up only itself. A
//! delivery whose attempt fails goes back to the outbox with its next time; the deliveries
//! behind it go ahead. Every state lives in the store: a restart picks up where the last run
//! stopped, and a delivery interrupted mid-post is posted again with the same delivery id
//! (at-least-once; receivers deduplicate by `X-Wagate-Delivery-Id` / `webhook-id`).
//!
//! # Signatures
//!
//! `X-Wagate-Signature: v1,sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`, keyed
//! with the secret string's bytes; and the Standard Webhooks headers (`webhook-id` = the
//! delivery id, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256(key,
//! "{id}.{timestamp}.{body}")>` with the key the base64 after `whsec_`). During a secret
//! rotation's grace both secrets sign: `webhook-signature` carries both (space-separated),
//! `X-Wagate-Signature-Previous` the old one's.

use std::collections::HashSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::WebhooksConfig;
use crate::events::{Bus, Event, Notice};
use crate::store::outbox::{self, AttemptRecord, Delivery, Endpoint, Outcome, RESPONSE_KEPT};
use crate::store::{Store, StoreError};

/// A `Retry-After` value as a wait in milliseconds: delay-seconds, or an HTTP date (a date
/// already past asks for no wait). `None` when it is neither.
fn retry_after_ms(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or_default();
    Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
}

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// How many deliveries a worker takes from the outbox at a time; their attempts are recorded
/// together, so a crash repeats at most this many posts (same delivery ids).
pub const BATCH: usize = 32;

/// The longest the scheduler sleeps without looking at the outbox.
const IDLE: Duration = Duration::from_secs(30);

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", B64.encode(bytes))
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `v1,sha256=<hex>` over `"{timestamp}.{body}"`, keyed with the secret string's bytes.
pub fn sign_wagate(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac_sha256(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1,sha256={hex}")
}

/// The Standard Webhooks signature `v1,<base64>` over `"{id}.{timestamp}.{body}"`; `None` if
/// the secret is not `whsec_<base64>`.
pub fn sign_standard(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = B64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    let ts = timestamp.to_string();
    let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    Some(format!("v1,{}", B64.encode(mac)))
}

/// The headers of one attempt, in order.
pub fn headers(
    ep: &Endpoint,
    d: &Delivery,
    timestamp_s: i64,
    now_ms: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("Content-Type", "application/json".to_string()),
        (
            "User-Agent",
            concat!("wagate/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        ("X-Wagate-Event", d.event_type.clone()),
        ("X-Wagate-Delivery-Id", d.id.clone()),
        ("X-Wagate-Timestamp", timestamp_s.to_string()),
        (
            "X-Wagate-Signature",
            sign_wagate(&ep.secret, timestamp_s, body),
        ),
    ];
    let previous = ep.previous_at(now_ms);
    if let Some(old) = previous {
        h.push((
            "X-Wagate-Signature-Previous",
            sign_wagate(old, timestamp_s, body),
        ));
    }
    let mut standard: Vec<String> = [Some(ep.secret.as_str()), previous]
        .into_iter()
        .flatten()
        .filter_map(|s| sign_standard(s, &d.id, timestamp_s, body))
        .collect();
    standard.dedup();
    h.push(("webhook-id", d.id.clone()));
    h.push(("webhook-timestamp", timestamp_s.to_string()));
    h.push(("webhook-signature", standard.join(" ")));
    h
}

/// What one look at a due delivery came to.
enum Step {
    /// Nothing to post any more; dropped with this reason.
    Expire(&'static str),
    Posted(Outcome),
}

/// The forwarder's settings, from `[webhooks]`.
#[derive(Debug, Clone)]
pub struct Settings {
    pub require_clock_sync: bool,
    pub timeout: Duration,
    /// The wait after the n-th failed attempt: 1 s, 5 s, 30 s, then the configured tail.
    pub retries_ms: Vec<u64>,
    pub rotation_grace_ms: i64,
    pub retention_ms: i64,
    pub retention_max: u64,
    pub retention_max_events: u64,
    /// The bytes the event and delivery log may hold (`retention_max_mb`).
    pub retention_max_bytes: u64,
    /// How often the delivery log is pruned (`[store] retention_interval_minutes`, set by
    /// the daemon; hourly otherwise).
    pub prune_every: Duration,
}

impl From<&WebhooksConfig> for Settings {
    fn from(c: &WebhooksConfig) -> Self {
        let mut retries_ms = outbox::FIRST_RETRIES_MS.to_vec();
        retries_ms.extend(c.retry_tail_secs.iter().map(|s| u64::from(*s) * 1000));
        Settings {
            require_clock_sync: c.require_clock_sync,
            timeout: Duration::from_secs(u64::from(c.timeout_secs)),
            retries_ms,
            rotation_grace_ms: i64::from(c.rotation_grace_secs) * 1000,
            retention_ms: i64::from(c.retention_days) * 86_400_000,
            retention_max: u64::from(c.retention_max_deliveries),
            retention_max_events: u64::from(c.retention_max_events),
            retention_max_bytes: u64::from(c.retention_max_mb) * 1024 * 1024,
            prune_every: Duration::from_secs(3600),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from(&WebhooksConfig::default())
    }
}

/// What the forwarder is doing, for health and metrics.
#[derive(Debug, Default)]
pub struct Status {
    /// Deliveries are held until the clock is synchronized.
    pub waiting_for_clock: AtomicBool,
    pub attempts: AtomicU64,
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Deliveries that ended `failed` (schedule exhausted, 410).
    pub failed: AtomicU64,
    pub expired: AtomicU64,
}

struct Inner {
    store: Store,
    bus: Bus,
    settings: Settings,
    clock: Clock,
    wake: Notify,
    status: Status,
    stop: AtomicBool,
    agent: ureq::Agent,
    busy: Mutex<HashSet<String>>,
}

/// The running forwarder. Cloning shares it; [`Webhooks::stop`] ends it.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

impl Webhooks {
    /// Start the forwarder on the runtime. It wakes when an event is published on `bus`
    /// (events are in the outbox before they are published), when [`Webhooks::wake`] is
    /// called, and when the next retry is due.
    pub fn spawn(store: Store, bus: &Bus, settings: Settings, clock: Clock) -> Webhooks {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(settings.timeout))
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let wh = Webhooks {
            inner: Arc::new(Inner {
                store,
                bus: bus.clone(),
                settings,
                clock,
                wake: Notify::new(),
                status: Status::default(),
                stop: AtomicBool::new(false),
                agent,
                busy: Mutex::new(HashSet::new()),
            }),
        };
        if wh.inner.settings.require_clock_sync && wh.inner.clock.synced().is_none() {
            tracing::warn!(
                "webhooks.require_clock_sync is on but this system cannot tell whether its clock is synchronized; deliveries are not held"
            );
        }
        let mut rx = bus.subscribe();
        let w = wh.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(Notice::Event(_)) => w.wake(),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => w.wake(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
                if w.inner.stop.load(Ordering::Acquire) {
                    return;
                }
            }
        });
        let w = wh.clone();
        tokio::spawn(async move { w.run().await });
        wh
    }

    /// Look at the outbox now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stop taking deliveries; workers finish the attempt under way.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::Release);
        self.wake();
    }

    pub fn status(&self) -> &Status {
        &self.inner.status
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Deliveries may go: the clock gate is off, or the clock is synchronized, or the system
    /// cannot tell (not Linux, or adjtimex refused): holding them for ever on a clock nobody
    /// can read would lose them in effect, so they go and the start logs a warning.
    fn clock_ok(&self) -> bool {
        !self.inner.settings.require_clock_sync || self.inner.clock.synced() != Some(false)
    }

    /// Tell the bus how many failed deliveries these sessions have now (the status screen
    /// and SSE show it).
    pub fn publish_failed(&self, sessions: impl IntoIterator<Item = String>) {
        for session in sessions {
            let s = session.clone();
            match self
                .inner
                .store
                .read_blocking(move |t| outbox::failed_count(t, &s))
            {
                Ok(failed) => self
                    .inner
                    .bus
                    .publish(Notice::Deliveries { session, failed }),
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot count failed deliveries"),
            }
        }
    }

    async fn run(self) {
        let inner = &self.inner;
        let mut last_prune: Option<Instant> = None;
        match inner.store.read(outbox::failed_counts).await {
            Ok(counts) => {
                for (session, failed) in counts {
                    inner.bus.publish(Notice::Deliveries { session, failed });
                }
            }
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot count failed deliveries"),
        }
        while !inner.stop.load(Ordering::Acquire) {
            if !self.clock_ok() {
                if !inner.status.waiting_for_clock.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        "webhook deliveries wait for the system clock to be synchronized"
                    );
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), inner.wake.notified()).await;
                continue;
            }
            if inner.status.waiting_for_clock.swap(false, Ordering::AcqRel) {
                tracing::info!("system clock synchronized; webhook deliveries go out");
            }
            if last_prune.is_none_or(|t| t.elapsed() >= inner.settings.prune_every) {
                last_prune = Some(Instant::now());
                self.prune().await;
            }
            let sleep = match self.dispatch().await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::error!(error = %e, "webhooks: cannot read the outbox");
                    Duration::from_secs(5)
                }
            };
            if sleep > Duration::ZERO {
                let _ = tokio::time::timeout(sleep, inner.wake.notified()).await;
            }
        }
    }

    /// Start a worker for every idle endpoint with due deliveries; return how long to sleep
    /// before the next one is due.
    async fn dispatch(&self) -> Result<Duration, StoreError> {
        let now = self.inner.clock.now_ms();
        let endpoints = self.inner.store.read(outbox::list_endpoints).await?;
        let mut next: Option<i64> = None;
        // The MQTT endpoint's deliveries are published by `net::mqtt`.
        for ep in endpoints
            .into_iter()
            .filter(|e| e.enabled && e.id != outbox::MQTT_ENDPOINT)
        {
            if self.is_busy(&ep.id) {
                continue;
            }
            let id = ep.id.clone();
            let Some(at) = self
                .inner
                .store
                .read(move |t| outbox::next_due(t, &id))
                .await?
            else {
                continue;
            };
            if at <= now {
                self.start_worker(ep.id);
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        Ok(match next {
            Some(at) => Duration::from_millis((at - now).max(0) as u64).min(IDLE),
            None => IDLE,
        })
    }

    fn is_busy(&self, endpoint: &str) -> bool {
        self.inner
            .busy
            .lock()
            .map(|b| b.contains(endpoint))
            .unwrap_or(true)
    }

    fn start_worker(&self, endpoint: String) {
        match self.inner.busy.lock() {
            Ok(mut b) => {
                if !b.insert(endpoint.clone()) {
                    return;
                }
            }
            Err(_) => return,
        }
        let w = self.clone();
        tokio::task::spawn_blocking(move || {
            w.work(&endpoint);
            if let Ok(mut b) = w.inner.busy.lock() {
                b.remove(&endpoint);
            }
            w.wake();
        });
    }

    /// Post an endpoint's due deliveries, in order, until none is due. A batch's attempts are
    /// recorded in one transaction after it (one fsync per batch, not per post); a crash
    /// before that commit posts the batch again, with the same delivery ids.
    fn work(&self, endpoint: &str) {
        let inner = &self.inner;
        loop {
            if inner.stop.load(Ordering::Acquire) || !self.clock_ok() {
                return;
            }
            let now = inner.clock.now_ms();
            let due = inner
                .store
                .read_blocking(|t| outbox::due(t, endpoint, now, BATCH));
            let due = match due {
                Ok(d) if d.is_empty() => return,
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(endpoint, error = %e, "webhooks: cannot read due deliveries");
                    return;
                }
            };
            let mut steps = Vec::with_capacity(due.len());
            for d in due {
                if inner.stop.load(Ordering::Acquire) {
                    break;
                }
                match self.attempt(&d) {
                    Ok(step) => steps.push((d, step)),
                    Err(e) => {
                        tracing::error!(delivery = %d.id, error = %e, "webhooks: cannot read a delivery");
                        break;
                    }
                }
            }
            if let Err(e) = self.record(steps) {
                tracing::error!(endpoint, error = %e, "webhooks: cannot record attempts");
                return;
            }
        }
    }

    /// Post one delivery (or find it has nothing left to post).
    fn attempt(&self, d: &Delivery) -> Result<Step, StoreError> {
        let inner = &self.inner;
        let (event_id, ep_id) = (d.event_id.clone(), d.endpoint.clone());
        let (body, ep) = inner.store.read_blocking(|t| {
            Ok((
                outbox::event_body(t, &event_id)?,
                outbox::get_endpoint(t, &ep_id)?,
            ))
        })?;
        let now = inner.clock.now_ms();
        let (Some(body), Some(ep)) = (body, ep) else {
            return Ok(Step::Expire("its event or endpoint is gone"));
        };
        if let Ok(event) = serde_json::from_slice::<Event>(&body)
            && let Some(at) = outbox::expired_at(&event, now)
        {
            tracing::info!(delivery = %d.id, expired_at = at, "webhooks: QR code expired; delivery dropped");
            return Ok(Step::Expire("the QR code expired before delivery"));
        }
        inner.status.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(Step::Posted(self.post(&ep, d, &body, now)))
    }

    /// Record a batch's outcomes in one transaction, then count and log them.
    fn record(&self, steps: Vec<(Delivery, Step)>) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let retries = &inner.settings.retries_ms;
        let now = inner.clock.now_ms();
        let after = inner.store.write_blocking(|t| {
            let mut out = Vec::with_capacity(steps.len());
            for (d, step) in &steps {
                out.push(match step {
                    Step::Expire(why) => outbox::expire(t, &d.id, why, now)?,
                    Step::Posted(o) => outbox::attempted(t, &d.id, o.clone(), retries, now)?,
                });
            }
            Ok(out)
        })?;
        let mut failed_sessions = std::collections::BTreeSet::new();
        for ((d, step), a) in steps.iter().zip(after) {
            let (Some(a), Step::Posted(o)) = (a, step) else {
                inner.status.expired.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if a.status == outbox::DeliveryStatus::Delivered {
                inner.status.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(delivery = %d.id, endpoint = %d.endpoint, "webhook delivered");
                continue;
            }
            inner.status.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if a.status == outbox::DeliveryStatus::Failed {
                inner.status.failed.fetch_add(1, Ordering::Relaxed);
                failed_sessions.insert(d.session.clone());
            }
            let code = o.attempt.status_code;
            tracing::warn!(
                delivery = %d.id,
                endpoint = %d.endpoint,
                status = ?code,
                error = ?o.attempt.error,
                next_at = ?a.next_at,
                state = a.status.as_str(),
                "webhook attempt failed"
            );
            if code == Some(410) {
                tracing::warn!(endpoint = %d.endpoint, "receiver answered 410 Gone: endpoint disabled");
            }
        }
        self.publish_failed(failed_sessions);
        Ok(())
    }

    fn post(&self, ep: &Endpoint, d: &Delivery, body: &[u8], now: i64) -> Outcome {
        let ts = now.div_euclid(1000);
        let mut req = ureq::http::Request::builder().method("POST").uri(&ep.url);
        for (name, value) in headers(ep, d, ts, now, body) {
            req = req.header(name, value);
        }
        let started = Instant::now();
        let attempt = |status_code, response, error| AttemptRecord {
            at: now,
            status_code,
            latency_ms: started.elapsed().as_millis() as u64,
            response,
            error,
        };
        let req = match req.body(body.to_vec()) {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    attempt: attempt(None, None, Some(format!("bad request: {e}"))),
                    retry_after_ms: None,
                };
            }
        };
        match self.inner.agent.run(req) {
            Ok(mut resp) => {
                let code = resp.status().as_u16();
                let retry_after_ms = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after_ms(v, std::time::SystemTime::now()));
                let mut kept = Vec::new();
                let _ = resp
                    .body_mut()
                    .as_reader()
                    .take(RESPONSE_KEPT as u64)
                    .read_to_end(&mut kept);
                let text = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
                let error = (!(200..300).contains(&code)).then(|| format!("HTTP {code}"));
                Outcome {
                    attempt: attempt(Some(code), text, error),
                    retry_after_ms,
                }
            }
            Err(e) => Outcome {
                attempt: attempt(None, None, Some(e.to_string())),
                retry_after_ms: None,
            },
        }
    }

    async fn prune(&self) {
        let settings = &self.inner.settings;
        let bounds = outbox::Bounds {
            older_than: self.inner.clock.now_ms() - settings.retention_ms,
            max_deliveries: settings.retention_max,
            max_events: settings.retention_max_events,
            max_bytes: settings.retention_max_bytes,
        };
        match self
            .inner
            .store
            .write(move |t| outbox::prune(t, bounds))
            .await
        {
            Ok((0, 0)) => {}
            Ok((d, e)) => tracing::info!(deliveries = d, events = e, "webhook log pruned"),
            Err(e) => tracing::warn!(error = %e, "webhooks: cannot prune the log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(retry_after_ms("120", now), Some(120_000));
        assert_eq!(retry_after_ms(" 0 ", now), Some(0));
        // 2015-10-21 07:28:00 GMT is now: 90 s later is a 90 s wait; a past date, none.
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:29:30 GMT", now),
            Some(90_000)
        );
        assert_eq!(
            retry_after_ms("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        assert_eq!(retry_after_ms("soon", now), None);
        assert_eq!(retry_after_ms("-5", now), None);
    }

    #[test]
    fn wagate_signature_is_hex_hmac_of_timestamp_dot_body() {
        // The HMAC-SHA256 reference value for key "key" and the pangram (Wikipedia's
        // example) pins the primitive; the signature is over "{ts}.{body}".
        let sig = sign_wagate("key", 1_700_000_000, b"{}");
        assert!(sig.starts_with("v1,sha256="));
        assert_eq!(sig.len(), "v1,sha256=".len() + 64);
        let known = hmac_sha256(b"key", &[b"The quick brown fox jumps over the lazy dog"]);
        let hex: String = known.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes_and_differ() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        let raw = B64.decode(a.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(sign_standard(&a, "dlv_1", 1, b"x").is_some());
        assert!(sign_standard("not-a-secret", "dlv_1", 1, b"x").is_none());
    }

    #[test]
    fn retry_schedule_is_the_first_three_then_the_tail() {
        let s = Settings::default();
        assert_eq!(
            s.retries_ms,
            vec![
                1_000, 5_000, 30_000, 300_000, 1_800_000, 7_200_000, 21_600_000, 43_200_000
            ]
        );
    }
}
