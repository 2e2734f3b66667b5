//! `GET /metrics` (`admin`): Prometheus text format 0.0.4.
//!
//! Each room contributes families through [`Metrics`]: sessions, store and the API itself
//! now; the send queue and the webhook forwarder add theirs in [`render`] as they land.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::health::{STATES, count_states};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/metrics",
        Access::Scope(Scope::Admin),
        "Prometheus metrics",
        get(metrics),
    )]
}

/// A Prometheus text writer: one `family` call, then its samples.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    out: String,
}

impl Metrics {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample; `labels` as `(name, value)` pairs (values are escaped).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

pub(crate) async fn render(state: &ApiState) -> Result<String, ApiError> {
    let mut m = Metrics::default();
    m.family("wagate_build_info", "gauge", "Build information.")
        .sample(
            "wagate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1.0,
        );
    m.family(
        "wagate_uptime_seconds",
        "gauge",
        "Seconds since the API started.",
    )
    .sample(
        "wagate_uptime_seconds",
        &[],
        state.started().elapsed().as_secs_f64().floor(),
    );
    m.family(
        "wagate_store_ok",
        "gauge",
        "1 while the store works, 0 once it has failed.",
    )
    .sample(
        "wagate_store_ok",
        &[],
        if state.store().is_ok() { 1.0 } else { 0.0 },
    );

    // Sessions.
    let sessions = state.manager().list().await?;
    let by_state = count_states(&sessions);
    m.family("wagate_sessions", "gauge", "Sessions by state.");
    for s in STATES {
        let n = by_state.get(s).copied().unwrap_or(0);
        m.sample("wagate_sessions", &[("state", s)], n as f64);
    }
    m.family(
        "wagate_session_up",
        "gauge",
        "1 while the session is connected to WhatsApp.",
    );
    for s in &sessions {
        let up = matches!(s.state, crate::events::SessionState::Connected { .. });
        m.sample(
            "wagate_session_up",
            &[("session", &s.id)],
            if up { 1.0 } else { 0.0 },
        );
    }

    // The API itself.
    m.family(
        "wagate_queue_depth",
        "gauge",
        "Messages waiting in each session's send queue.",
    );
    for s in &sessions {
        let sid = s.id.clone();
        let depth = state
            .store()
            .read(move |t| crate::store::queue::depth(t, &sid))
            .await?;
        m.sample("wagate_queue_depth", &[("session", &s.id)], depth as f64);
    }
    let st = state.manager().stats();
    m.family(
        "wagate_messages_total",
        "counter",
        "Messages since start: sent and failed sends, delivery and read receipts, received.",
    );
    for (event, n) in [
        ("sent", &st.sent),
        ("failed", &st.failed),
        ("delivered", &st.delivered),
        ("read", &st.read),
        ("received", &st.received),
    ] {
        m.sample(
            "wagate_messages_total",
            &[("event", event)],
            n.load(Ordering::Relaxed) as f64,
        );
    }
    m.family(
        "wagate_inbound_resend_requests_total",
        "counter",
        "Received messages a crash left decrypted but never kept, whose senders were asked to \
         send them again.",
    )
    .sample(
        "wagate_inbound_resend_requests_total",
        &[],
        st.resend_requests.load(Ordering::Relaxed) as f64,
    );
    let commits = state.store().commit_stats();
    m.family(
        "wagate_store_commits_total",
        "counter",
        "Writes committed (each its own unit of work; a group of them shares one redb transaction).",
    )
    .sample(
        "wagate_store_commits_total",
        &[],
        commits.commits.load(Ordering::Relaxed) as f64,
    );
    m.family(
        "wagate_store_syncs_total",
        "counter",
        "Durable commits (one fsync each); with group commit one covers several writes.",
    )
    .sample(
        "wagate_store_syncs_total",
        &[],
        commits.syncs.load(Ordering::Relaxed) as f64,
    );
    m.family(
        "wagate_store_rollbacks_total",
        "counter",
        "Groups rolled back because one write in them failed; their other writes ran again.",
    )
    .sample(
        "wagate_store_rollbacks_total",
        &[],
        commits.rollbacks.load(Ordering::Relaxed) as f64,
    );
    m.family(
        "wagate_store_commit_seconds_total",
        "counter",
        "Time spent in durable commits (the fsync); divide by the syncs for the mean fsync latency.",
    )
    .sample(
        "wagate_store_commit_seconds_total",
        &[],
        commits.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );

    let wire = state.store().wire_stats();
    m.family(
        "wagate_wire_holds_total",
        "counter",
        "Frames to WhatsApp held until the Signal state of a decrypt was in redb, and of those \
         the ones that went after the 500 ms bound without it (outcome=timed_out).",
    );
    let (waits, timeouts) = (
        wire.waits.load(Ordering::Relaxed),
        wire.timeouts.load(Ordering::Relaxed),
    );
    for (outcome, n) in [
        ("saved", waits.saturating_sub(timeouts)),
        ("timed_out", timeouts),
    ] {
        m.sample("wagate_wire_holds_total", &[("outcome", outcome)], n as f64);
    }
    m.family(
        "wagate_wire_hold_seconds_total",
        "counter",
        "Time those frames were held, summed.",
    )
    .sample(
        "wagate_wire_hold_seconds_total",
        &[],
        wire.wait_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );

    let c = state.counters();
    m.family(
        "wagate_http_responses_total",
        "counter",
        "API responses by status class.",
    );
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let n = c.responses[i].load(Ordering::Relaxed);
        m.sample("wagate_http_responses_total", &[("code", class)], n as f64);
    }
    m.family("wagate_sse_clients", "gauge", "Open /api/events streams.")
        .sample(
            "wagate_sse_clients",
            &[],
            c.sse_clients.load(Ordering::Relaxed) as f64,
        );
    m.family(
        "wagate_setup_pending",
        "gauge",
        "1 while first-boot setup waits for its code.",
    )
    .sample(
        "wagate_setup_pending",
        &[],
        if state.setup().is_open() { 1.0 } else { 0.0 },
    );
    if let Some(w) = state.webhooks() {
        let st = w.status();
        m.family(
            "wagate_webhook_attempts_total",
            "counter",
            "Webhook posts since start, by outcome (delivered: 2xx; failed: any other answer \
             or none).",
        );
        for (outcome, n) in [
            ("delivered", &st.delivered),
            ("failed", &st.failed_attempts),
        ] {
            m.sample(
                "wagate_webhook_attempts_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        m.family(
            "wagate_webhook_deliveries_ended_total",
            "counter",
            "Deliveries that ended unsent since start: failed (schedule exhausted or 410), \
             expired (a QR code that expired first).",
        );
        for (end, n) in [("failed", &st.failed), ("expired", &st.expired)] {
            m.sample(
                "wagate_webhook_deliveries_ended_total",
                &[("end", end)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        let pending = state
            .store()
            .read(crate::store::outbox::pending_count)
            .await?;
        m.family(
            "wagate_webhook_pending",
            "gauge",
            "Deliveries scheduled (first attempts and retries).",
        )
        .sample("wagate_webhook_pending", &[], pending as f64);
        m.family(
            "wagate_webhook_waiting_for_clock",
            "gauge",
            "1 while deliveries wait for the system clock to be synchronized.",
        )
        .sample(
            "wagate_webhook_waiting_for_clock",
            &[],
            if st.waiting_for_clock.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        );
    }
    if let Some(q) = state.mqtt() {
        let st = q.status();
        m.family(
            "wagate_mqtt_connected",
            "gauge",
            "1 while the MQTT broker connection is up.",
        )
        .sample(
            "wagate_mqtt_connected",
            &[],
            if q.connected() { 1.0 } else { 0.0 },
        );
        m.family(
            "wagate_mqtt_backlog",
            "gauge",
            "Events waiting for the MQTT broker.",
        )
        .sample("wagate_mqtt_backlog", &[], q.backlog().await? as f64);
        m.family(
            "wagate_mqtt_events_total",
            "counter",
            "Events published to the broker since start, by outcome (acked: PUBACK success; \
             refused: a PUBACK reason code, retried later).",
        );
        for (outcome, n) in [("acked", &st.published), ("refused", &st.refused)] {
            m.sample(
                "wagate_mqtt_events_total",
                &[("outcome", outcome)],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        m.family(
            "wagate_mqtt_commands_total",
            "counter",
            "MQTT commands taken since start, by outcome.",
        );
        let (all, errors) = (
            st.commands.load(Ordering::Relaxed),
            st.command_errors.load(Ordering::Relaxed),
        );
        for (outcome, n) in [("ok", all.saturating_sub(errors)), ("error", errors)] {
            m.sample(
                "wagate_mqtt_commands_total",
                &[("outcome", outcome)],
                n as f64,
            );
        }
        m.family(
            "wagate_mqtt_connects_total",
            "counter",
            "Connections made to the broker since start.",
        )
        .sample(
            "wagate_mqtt_connects_total",
            &[],
            st.connects.load(Ordering::Relaxed) as f64,
        );
    }
    Ok(m.finish())
}

async fn metrics(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let text = render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
