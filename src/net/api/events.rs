//! `GET /api/events`: the live bus as Server-Sent Events (`sessions:read`).
//!
//! Each SSE event is named by its type: `state` for every session state change (data:
//! `{"session", "state", ...the state's fields}`), the domain event types
//! (`session.connected`, `message.received`, ...; data: the event as webhooks carry it, its
//! `id` also the SSE id), `queue` when a send queue changes length (`{"session","depth"}`),
//! `deliveries` when a session's count of failed webhook deliveries changes
//! (`{"session","failed"}`), and `resync` when this reader fell behind the bus and missed
//! notices (data: `{"missed": n}`): re-read `GET /api/sessions` then. Filters:
//! `?session=a,b` and `?type=state,session.qr`. Keys limited to sessions see only theirs.
//! Nothing here is durable: webhooks are the delivery guarantee, this is the live view.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::Method;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::auth::{Principal, session_forbidden};
use super::error::QueryParams;
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::events::Notice;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/events",
        Access::Scope(Scope::SessionsRead),
        "Live session states and domain events (Server-Sent Events)",
        get(events),
    )]
}

/// The SSE event names a `?type=` filter may list.
pub(crate) const TYPES: &[&str] = &[
    "state",
    "resync",
    "session.connected",
    "session.disconnected",
    "session.qr",
    "session.failed",
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "webhook.test",
    "queue",
    "deliveries",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    session: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

fn comma_list(s: &Option<String>) -> Option<Vec<String>> {
    s.as_ref().map(|s| {
        s.split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()
    })
}

struct Wanted {
    sessions: Option<Vec<String>>,
    types: Option<Vec<String>>,
    key: Principal,
}

impl Wanted {
    fn session(&self, id: &str) -> bool {
        self.key.allows_session(id)
            && self
                .sessions
                .as_ref()
                .is_none_or(|list| list.iter().any(|s| s == id))
    }

    fn kind(&self, name: &str) -> bool {
        self.types
            .as_ref()
            .is_none_or(|list| list.iter().any(|t| t == name))
    }

    /// The SSE event for a notice, if this reader wants it.
    fn render(&self, notice: &Notice) -> Option<SseEvent> {
        match notice {
            Notice::State { session, state } => {
                if !self.session(session) || !self.kind("state") {
                    return None;
                }
                let mut data = serde_json::to_value(state).ok()?;
                if let Some(obj) = data.as_object_mut() {
                    obj.insert("session".into(), session.clone().into());
                }
                SseEvent::default().event("state").json_data(data).ok()
            }
            Notice::Event(ev) => {
                if !self.session(&ev.session) || !self.kind(ev.type_name()) {
                    return None;
                }
                SseEvent::default()
                    .event(ev.type_name())
                    .id(ev.id.clone())
                    .json_data(ev)
                    .ok()
            }
            Notice::Queue { session, depth } => {
                if !self.session(session) || !self.kind("queue") {
                    return None;
                }
                SseEvent::default()
                    .event("queue")
                    .json_data(serde_json::json!({ "session": session, "depth": depth }))
                    .ok()
            }
            Notice::Deliveries { session, failed } => {
                if !self.session(session) || !self.kind("deliveries") {
                    return None;
                }
                SseEvent::default()
                    .event("deliveries")
                    .json_data(serde_json::json!({ "session": session, "failed": failed }))
                    .ok()
            }
        }
    }
}

struct Reader {
    rx: broadcast::Receiver<Notice>,
    closing: watch::Receiver<bool>,
    wanted: Wanted,
    state: ApiState,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.state
            .counters()
            .sse_clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

async fn events(
    State(state): State<ApiState>,
    key: Principal,
    QueryParams(filter): QueryParams<Filter>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let sessions = comma_list(&filter.session);
    let types = comma_list(&filter.kind);
    if let Some(bad) = sessions.iter().flatten().find(|s| !key.allows_session(s)) {
        return Err(session_forbidden(bad));
    }
    if let Some(bad) = types
        .iter()
        .flatten()
        .find(|t| !TYPES.contains(&t.as_str()))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!(
                "unknown event type '{bad}' in type; one of: {}",
                TYPES.join(", ")
            ),
        ));
    }
    state
        .counters()
        .sse_clients
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reader = Reader {
        rx: state.bus().subscribe(),
        closing: state.closing(),
        wanted: Wanted {
            sessions,
            types,
            key,
        },
        state: state.clone(),
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        loop {
            if *r.closing.borrow() {
                return None;
            }
            let next = tokio::select! {
                n = r.rx.recv() => n,
                _ = r.closing.changed() => return None,
            };
            match next {
                Ok(notice) => {
                    if let Some(ev) = r.wanted.render(&notice) {
                        return Some((Ok(ev), r));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Always tell a lagging reader, whatever it filters on.
                    let ev = SseEvent::default()
                        .event("resync")
                        .json_data(serde_json::json!({ "missed": missed }))
                        .unwrap_or_default();
                    return Some((Ok(ev), r));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
