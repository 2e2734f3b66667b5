//! `GET /api/health`: no key; 200 while the store works, 503 once it has failed.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Serialize;

use super::{Access, ApiState, Route};
use crate::engine::SessionInfo;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/health",
        Access::Public,
        "Health: version, uptime, sessions by state, clock, store, device id, certificate",
        get(health),
    )]
}

/// The session states, in the order the API lists them.
pub(crate) const STATES: [&str; 6] = [
    "stopped",
    "connecting",
    "qr",
    "connected",
    "disconnected",
    "failed",
];

/// Sessions per state, every state present (zero when none).
pub(crate) fn count_states(sessions: &[SessionInfo]) -> BTreeMap<&'static str, u64> {
    let mut by: BTreeMap<&'static str, u64> = STATES.iter().map(|s| (*s, 0)).collect();
    for s in sessions {
        *by.entry(s.state.name()).or_default() += 1;
    }
    by
}

#[derive(Debug, Serialize)]
struct Health {
    /// `ok`, or `store_failed`.
    status: &'static str,
    version: &'static str,
    uptime_s: u64,
    /// Sessions per state; `null` when the store cannot be read.
    sessions: Option<BTreeMap<&'static str, u64>>,
    /// Whether the kernel says the clock is synchronized; `null` when it cannot tell.
    clock_synced: Option<bool>,
    store_ok: bool,
    /// Whether first-boot setup still waits for its code (`POST /api/setup`).
    setup_pending: bool,
    /// The device's stable id; `null` in a server embedded without one.
    device_id: Option<String>,
    /// Whether the API speaks HTTPS.
    tls: bool,
    /// SHA-256 of the API certificate (colon-separated hex pairs), for pinning.
    cert_sha256: Option<String>,
    /// The webhook forwarder; `null` when none runs.
    webhooks: Option<WebhookHealth>,
    /// The MQTT link; `null` when `[mqtt]` is off.
    mqtt: Option<MqttHealth>,
}

#[derive(Debug, Serialize)]
struct MqttHealth {
    connected: bool,
    /// `mqtt[s]://host:port`.
    broker: String,
    base_topic: String,
    /// Events waiting for the broker.
    backlog: Option<u64>,
    /// Events the broker acknowledged since the start.
    published: u64,
    /// Why the link is down, while it is.
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct WebhookHealth {
    /// `webhooks.require_clock_sync` is on and the clock is not synchronized: deliveries wait.
    waiting_for_clock: bool,
    require_clock_sync: bool,
    /// Deliveries scheduled (first attempts and retries).
    pending: Option<u64>,
}

async fn health(State(state): State<ApiState>) -> (StatusCode, Json<serde_json::Value>) {
    let store_ok = state.store().is_ok();
    let sessions = match state.manager().list().await {
        Ok(list) => Some(count_states(&list)),
        Err(e) => {
            tracing::warn!(error = %e, "health: cannot list sessions");
            None
        }
    };
    let webhooks = match state.webhooks() {
        Some(w) => Some(WebhookHealth {
            waiting_for_clock: w
                .status()
                .waiting_for_clock
                .load(std::sync::atomic::Ordering::Acquire),
            require_clock_sync: w.settings().require_clock_sync,
            pending: state
                .store()
                .read(crate::store::outbox::pending_count)
                .await
                .ok(),
        }),
        None => None,
    };
    let mqtt = match state.mqtt() {
        Some(m) => Some(MqttHealth {
            connected: m.connected(),
            broker: m.settings().broker(),
            base_topic: m.settings().topics.base.clone(),
            backlog: m.backlog().await.ok(),
            published: m
                .status()
                .published
                .load(std::sync::atomic::Ordering::Relaxed),
            error: (!m.connected()).then(|| m.status().last_error()).flatten(),
        }),
        None => None,
    };
    let store_ok = store_ok && state.store().is_ok();
    let body = Health {
        status: if store_ok { "ok" } else { "store_failed" },
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started().elapsed().as_secs(),
        sessions,
        clock_synced: match state.webhooks() {
            Some(w) => w.clock().synced(),
            None => crate::clock::synced(),
        },
        store_ok,
        setup_pending: state.setup().is_open(),
        device_id: state.lan().and_then(|l| l.device_id.clone()),
        tls: state.lan().is_some_and(|l| l.cert_sha256.is_some()),
        cert_sha256: state.lan().and_then(|l| l.cert_sha256.clone()),
        webhooks,
        mqtt,
    };
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::to_value(body).unwrap_or_default()))
}
