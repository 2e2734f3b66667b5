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
//!
//! # Catch-up
//!
//! Domain events come from the outbox's event log, in the order they were written, not from
//! the bus: a notice on the bus only wakes the reader, which then reads the log past the last
//! position it handed out. So a reader that fell behind the bus loses no domain event, and a
//! client that reconnects with `Last-Event-ID` (what browsers' `EventSource` sends) or
//! `?after=<event id>` first gets every event written after that one, each once and in order,
//! then the live stream. When that event is no longer in the log, or the retention removed an
//! event written after it, the answer is 410 `event_gone`: the client must resync
//! (`GET /api/sessions`, the messages and the delivery log) and connect without an id. A
//! fresh connection starts at the log's end as the 200 answer is made. Only durable events
//! are handed out (the store shows a commit only after its fsync). A reader that falls so far
//! behind that the retention removes events it has not sent yet is ended; its reconnect gets
//! the 410. `state`, `queue` and `deliveries` are live notices with no id and are not
//! replayed: `resync` says some were missed.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

use super::auth::{Principal, session_forbidden};
use super::error::QueryParams;
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::events::{Event, Notice};
use crate::store::outbox;

/// How many logged events a reader takes from the store at once.
const LOG_CHUNK: usize = 128;

/// The longest event id `after` / `Last-Event-ID` may name.
const MAX_EVENT_ID: usize = 64;

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
    "call.received",
    "call.rejected",
    "group.participants",
    "group.updated",
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
    /// Resume after this event id (as `Last-Event-ID`; this wins when both are given).
    #[serde(default)]
    after: Option<String>,
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
            Notice::Event(ev) => self.event(ev),
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

impl Wanted {
    fn event(&self, ev: &Event) -> Option<SseEvent> {
        if !self.session(&ev.session) || !self.kind(ev.type_name()) {
            return None;
        }
        SseEvent::default()
            .event(ev.type_name())
            .id(ev.id.clone())
            .json_data(ev)
            .ok()
    }
}

struct Reader {
    rx: broadcast::Receiver<Notice>,
    closing: watch::Receiver<bool>,
    wanted: Wanted,
    state: ApiState,
    /// The last log position handed out (or passed over by the filters).
    through: u64,
    /// Logged events read and not yet handed out.
    backlog: VecDeque<Event>,
    /// Whether the log may hold events past `through` (set by every event notice).
    behind: bool,
}

impl Reader {
    /// The next SSE event, or `None` when the stream ends (shutdown, store failure).
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            while let Some(ev) = self.backlog.pop_front() {
                self.through = self.through.max(ev.pos);
                if let Some(sse) = self.wanted.event(&ev) {
                    return Some(sse);
                }
            }
            if self.behind {
                let after = self.through;
                let read = self
                    .state
                    .store()
                    .read(move |t| {
                        Ok((
                            outbox::events_after(t, after, LOG_CHUNK)?,
                            outbox::log_mark(t)?,
                        ))
                    })
                    .await;
                match read {
                    // The retention removed an event this reader had not handed out: end
                    // the stream; the client's reconnect with its Last-Event-ID gets 410.
                    Ok((_, mark)) if mark.pruned > after => {
                        tracing::info!(
                            through = after,
                            pruned = mark.pruned,
                            "event stream fell behind the retention"
                        );
                        return None;
                    }
                    Ok((events, _)) => {
                        self.behind = events.len() == LOG_CHUNK;
                        self.backlog.extend(events);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream cannot read the event log");
                        return None;
                    }
                }
                continue;
            }
            let next = tokio::select! {
                n = self.rx.recv() => n,
                _ = self.closing.changed() => return None,
            };
            match next {
                // A logged event is read from the log, in the order written.
                Ok(Notice::Event(ev)) if ev.pos != 0 => self.behind = ev.pos > self.through,
                Ok(notice) => {
                    if let Some(ev) = self.wanted.render(&notice) {
                        return Some(ev);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Always tell a lagging reader, whatever it filters on: live notices
                    // were missed (events were not: the log has them).
                    self.behind = true;
                    let ev = SseEvent::default()
                        .event("resync")
                        .json_data(serde_json::json!({ "missed": missed }))
                        .unwrap_or_default();
                    return Some(ev);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Where a reader starts in the event log: after the event the client names, or at the end.
async fn start(state: &ApiState, after: Option<String>) -> Result<u64, ApiError> {
    let Some(id) = after else {
        return Ok(state.store().read(outbox::log_mark).await?.last);
    };
    if id.is_empty() || id.len() > MAX_EVENT_ID {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("after / Last-Event-ID must be an event id of 1 to {MAX_EVENT_ID} characters"),
        ));
    }
    let key = id.clone();
    let (pos, mark) = state
        .store()
        .read(move |t| Ok((outbox::log_position(t, &key)?, outbox::log_mark(t)?)))
        .await?;
    match pos {
        Some(pos) if mark.pruned < pos => Ok(pos),
        _ => Err(ApiError::new(
            StatusCode::GONE,
            "event_gone",
            format!(
                "event '{id}' or events after it are no longer in the event log (retention): \
                 resync from GET /api/sessions and the delivery log, then connect without an id"
            ),
        )),
    }
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
    headers: HeaderMap,
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
    let after = filter.after.or_else(|| {
        headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    });
    // Subscribe before reading where the log stands: nothing written after that read is
    // missed.
    let rx = state.bus().subscribe();
    let through = start(&state, after).await?;
    state
        .counters()
        .sse_clients
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reader = Reader {
        rx,
        closing: state.closing(),
        wanted: Wanted {
            sessions,
            types,
            key,
        },
        state: state.clone(),
        through,
        backlog: VecDeque::new(),
        behind: true,
    };
    let stream = futures_util::stream::unfold(reader, |mut r| async move {
        let ev = r.next().await?;
        Some((Ok(ev), r))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
