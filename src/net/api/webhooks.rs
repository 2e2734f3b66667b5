//! Webhook endpoints (`webhooks:manage`): create (the secret is in the answer, once), list,
//! show, change, delete, rotate the secret, send a test event, replay; and the delivery log:
//! list, show with every attempt, redeliver.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, patch, post};
use serde::{Deserialize, Deserializer, Serialize};

use super::error::{JsonBody, PathParams, QueryParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::valid_session_id;
use crate::events::{Event, EventKind};
use crate::net::webhook::{self, Settings};
use crate::store::outbox::{
    self, Delivery, DeliveryFilter, DeliveryStatus, Endpoint, EndpointPatch,
};

pub(super) fn routes() -> Vec<Route> {
    let a = Access::Scope(Scope::WebhooksManage);
    vec![
        Route::new(
            Method::POST,
            "/api/webhooks",
            a,
            "Create a webhook endpoint (its secret is shown once)",
            post(create),
        ),
        Route::new(
            Method::GET,
            "/api/webhooks",
            a,
            "List webhook endpoints",
            get(list),
        ),
        Route::new(
            Method::GET,
            "/api/webhooks/{id}",
            a,
            "Show a webhook endpoint",
            get(show),
        ),
        Route::new(
            Method::PATCH,
            "/api/webhooks/{id}",
            a,
            "Change a webhook endpoint (url, events, sessions, enabled, description)",
            patch(update),
        ),
        Route::new(
            Method::DELETE,
            "/api/webhooks/{id}",
            a,
            "Delete a webhook endpoint",
            delete(remove),
        ),
        Route::new(
            Method::POST,
            "/api/webhooks/{id}/rotate-secret",
            a,
            "New secret; the old one keeps signing for webhooks.rotation_grace_secs",
            post(rotate),
        ),
        Route::new(
            Method::POST,
            "/api/webhooks/{id}/test",
            a,
            "Send a webhook.test event to this endpoint",
            post(test),
        ),
        Route::new(
            Method::POST,
            "/api/webhooks/{id}/replay",
            a,
            "Send every stored event since a time (unix ms) to this endpoint again",
            post(replay),
        ),
        Route::new(
            Method::GET,
            "/api/deliveries",
            a,
            "The delivery log, newest first (filters: status, endpoint, session, event)",
            get(deliveries),
        ),
        Route::new(
            Method::GET,
            "/api/deliveries/{id}",
            a,
            "One delivery with every attempt",
            get(delivery),
        ),
        Route::new(
            Method::POST,
            "/api/deliveries/{id}/redeliver",
            a,
            "Send a delivery again (same delivery id)",
            post(redeliver),
        ),
    ]
}

fn settings(state: &ApiState) -> Settings {
    state
        .webhooks()
        .map(|w| w.settings().clone())
        .unwrap_or_default()
}

fn now(state: &ApiState) -> i64 {
    state
        .webhooks()
        .map(|w| w.clock().now_ms())
        .unwrap_or_else(crate::events::now_ms)
}

fn wake(state: &ApiState) {
    if let Some(w) = state.webhooks() {
        w.wake();
    }
}

/// The MQTT endpoint belongs to `[mqtt]`, not to this API (only `replay` reaches it).
fn not_mqtt(id: &str) -> Result<(), ApiError> {
    if id == outbox::MQTT_ENDPOINT {
        return Err(not_found(id));
    }
    Ok(())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "webhook_not_found",
        format!("no webhook endpoint with id '{id}'"),
    )
}

/// An endpoint as the API shows it: never the secret.
#[derive(Debug, Serialize)]
pub(crate) struct EndpointView {
    id: String,
    url: String,
    events: Vec<String>,
    sessions: Option<Vec<String>>,
    enabled: bool,
    description: Option<String>,
    /// Why wagate disabled it (the receiver answered 410), when it did.
    disabled_reason: Option<String>,
    /// While set, deliveries are signed with the previous secret as well.
    previous_secret_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl EndpointView {
    fn new(e: Endpoint, now: i64) -> Self {
        EndpointView {
            previous_secret_until: e.previous_until.filter(|u| *u > now),
            id: e.id,
            url: e.url,
            events: e.events,
            sessions: e.sessions,
            enabled: e.enabled,
            description: e.description,
            disabled_reason: e.disabled_reason,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct WithSecret {
    /// The signing secret; shown this once.
    secret: String,
    #[serde(flatten)]
    view: EndpointView,
}

fn check_url(url: &str) -> Result<(), ApiError> {
    let bad = |why: &str| ApiError::unprocessable("invalid_url", format!("url {url:?}: {why}"));
    let uri: ureq::http::Uri = url.parse().map_err(|_| bad("not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if url.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), ApiError> {
    outbox::check_event_filter(events)
        .map_err(|m| ApiError::unprocessable("invalid_events", format!("events: {m}")))
}

fn check_sessions(sessions: &Option<Vec<String>>) -> Result<(), ApiError> {
    if let Some(list) = sessions {
        if list.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_sessions",
                "sessions: name at least one session, or leave it out for all",
            ));
        }
        if let Some(bad) = list.iter().find(|s| !valid_session_id(s)) {
            return Err(ApiError::unprocessable(
                "invalid_sessions",
                format!("sessions: {bad:?} is not a session id"),
            ));
        }
    }
    Ok(())
}

fn check_description(d: &Option<String>) -> Result<(), ApiError> {
    if d.as_ref().is_some_and(|d| d.chars().count() > 200) {
        return Err(ApiError::unprocessable(
            "invalid_description",
            "description: at most 200 characters",
        ));
    }
    Ok(())
}

fn all_events() -> Vec<String> {
    vec!["*".to_string()]
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    url: String,
    #[serde(default = "all_events")]
    events: Vec<String>,
    #[serde(default)]
    sessions: Option<Vec<String>>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    description: Option<String>,
}

async fn create(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Create>,
) -> Result<(StatusCode, Json<WithSecret>), ApiError> {
    check_url(&body.url)?;
    check_events(&body.events)?;
    check_sessions(&body.sessions)?;
    check_description(&body.description)?;
    let now = now(&state);
    let ep = Endpoint {
        id: outbox::new_endpoint_id(),
        url: body.url,
        events: body.events,
        sessions: body.sessions,
        enabled: body.enabled,
        description: body.description,
        secret: webhook::new_secret(),
        previous_secret: None,
        previous_until: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let rec = ep.clone();
    state
        .store()
        .write(move |t| outbox::insert_endpoint(t, &rec))
        .await?;
    tracing::info!(endpoint = %ep.id, url = %ep.url, "webhook endpoint created");
    Ok((
        StatusCode::CREATED,
        Json(WithSecret {
            secret: ep.secret.clone(),
            view: EndpointView::new(ep, now),
        }),
    ))
}

async fn list(State(state): State<ApiState>) -> Result<Json<Vec<EndpointView>>, ApiError> {
    let now = now(&state);
    let list = state.store().read(outbox::list_endpoints).await?;
    Ok(Json(
        list.into_iter()
            .filter(|e| e.id != outbox::MQTT_ENDPOINT)
            .map(|e| EndpointView::new(e, now))
            .collect(),
    ))
}

async fn show(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<EndpointView>, ApiError> {
    not_mqtt(&id)?;
    let key = id.clone();
    let ep = state
        .store()
        .read(move |t| outbox::get_endpoint(t, &key))
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(EndpointView::new(ep, now(&state))))
}

/// `"field": null` is `Some(None)` (clear it); a missing field is `None` (keep it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    sessions: Option<Option<Vec<String>>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
}

async fn update(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<Patch>,
) -> Result<Json<EndpointView>, ApiError> {
    not_mqtt(&id)?;
    if let Some(url) = &body.url {
        check_url(url)?;
    }
    if let Some(events) = &body.events {
        check_events(events)?;
    }
    if let Some(sessions) = &body.sessions {
        check_sessions(sessions)?;
    }
    if let Some(d) = &body.description {
        check_description(d)?;
    }
    let patch = EndpointPatch {
        url: body.url,
        events: body.events,
        sessions: body.sessions,
        enabled: body.enabled,
        description: body.description,
    };
    let now = now(&state);
    let key = id.clone();
    let ep = state
        .store()
        .write(move |t| outbox::update_endpoint(t, &key, patch.clone(), now))
        .await?
        .ok_or_else(|| not_found(&id))?;
    wake(&state);
    Ok(Json(EndpointView::new(ep, now)))
}

async fn remove(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    not_mqtt(&id)?;
    let now = now(&state);
    let key = id.clone();
    let gone = state
        .store()
        .write(move |t| outbox::delete_endpoint(t, &key, now))
        .await?;
    if !gone {
        return Err(not_found(&id));
    }
    tracing::info!(endpoint = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
struct Rotated {
    /// The new signing secret; shown this once.
    secret: String,
    /// Until then (unix ms) deliveries carry the old secret's signature as well.
    previous_secret_until: i64,
}

async fn rotate(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Rotated>, ApiError> {
    not_mqtt(&id)?;
    let now = now(&state);
    let until = now + settings(&state).rotation_grace_ms;
    let secret = webhook::new_secret();
    let (key, s) = (id.clone(), secret.clone());
    state
        .store()
        .write(move |t| outbox::rotate_secret(t, &key, s.clone(), until, now))
        .await?
        .ok_or_else(|| not_found(&id))?;
    tracing::info!(endpoint = %id, "webhook secret rotated");
    Ok(Json(Rotated {
        secret,
        previous_secret_until: until,
    }))
}

#[derive(Debug, Serialize)]
struct Queued {
    event_id: String,
    delivery_id: String,
}

async fn test(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    not_mqtt(&id)?;
    let mut event = Event::new(
        "",
        EventKind::WebhookTest {
            endpoint: id.clone(),
            message: "a test event from wagate".into(),
        },
    );
    event.timestamp = now(&state);
    let key = id.clone();
    let (event, d) = state
        .store()
        .write(move |t| outbox::record_test(t, &key, event.clone()))
        .await?
        .ok_or_else(|| not_found(&id))?;
    wake(&state);
    // The event stream shows it too (it is in the event log).
    state
        .bus()
        .publish(crate::events::Notice::Event(event.clone()));
    Ok((
        StatusCode::ACCEPTED,
        Json(Queued {
            event_id: event.id,
            delivery_id: d.id,
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayQuery {
    /// Unix milliseconds.
    since: i64,
}

#[derive(Debug, Serialize)]
struct Replayed {
    /// How many events go to the endpoint again.
    deliveries: u64,
}

async fn replay(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
    QueryParams(q): QueryParams<ReplayQuery>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    if q.since < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "since: unix milliseconds, not negative",
        ));
    }
    let now = now(&state);
    let key = id.clone();
    let n = state
        .store()
        .write(move |t| outbox::replay(t, &key, q.since, now))
        .await?
        .ok_or_else(|| not_found(&id))?;
    tracing::info!(endpoint = %id, since = q.since, deliveries = n, "webhook replay");
    wake(&state);
    Ok((StatusCode::ACCEPTED, Json(Replayed { deliveries: n })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    session: Option<String>,
    /// An event type or an event id.
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Log {
    deliveries: Vec<Delivery>,
    /// Pass as `before` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
}

async fn deliveries(
    State(state): State<ApiState>,
    QueryParams(q): QueryParams<LogQuery>,
) -> Result<Json<Log>, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(str::parse::<DeliveryStatus>)
        .transpose()
        .map_err(|m| ApiError::bad_request("invalid_query", format!("status: {m}")))?;
    if let Some(e) = &q.event
        && !e.starts_with("evt_")
        && !crate::events::EVENT_TYPES.contains(&e.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("event: '{e}' is neither an event type nor an event id"),
        ));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit: between 1 and 1000",
        ));
    }
    let filter = DeliveryFilter {
        status,
        endpoint: q.endpoint,
        session: q.session,
        event: q.event,
        before: q.before,
        // One more than asked: whether there is a next page.
        limit: limit + 1,
    };
    let mut list = state
        .store()
        .read(move |t| outbox::list_deliveries(t, &filter))
        .await?;
    let next_before = if list.len() > limit {
        list.truncate(limit);
        list.last().map(|d| d.id.clone())
    } else {
        None
    };
    Ok(Json(Log {
        deliveries: list,
        next_before,
    }))
}

fn delivery_not_found(id: &str) -> ApiError {
    ApiError::not_found("delivery_not_found", format!("no delivery with id '{id}'"))
}

async fn delivery(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<Delivery>, ApiError> {
    let key = id.clone();
    let d = state
        .store()
        .read(move |t| outbox::get_delivery(t, &key))
        .await?
        .ok_or_else(|| delivery_not_found(&id))?;
    Ok(Json(d))
}

async fn redeliver(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<Delivery>), ApiError> {
    let now = now(&state);
    let key = id.clone();
    let d = state
        .store()
        .write(move |t| outbox::redeliver(t, &key, now))
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Invalid(m) => ApiError::conflict("event_expired", m),
            other => other.into(),
        })?
        .ok_or_else(|| delivery_not_found(&id))?;
    wake(&state);
    if let Some(w) = state.webhooks().cloned() {
        let session = d.session.clone();
        let _ = tokio::task::spawn_blocking(move || w.publish_failed([session])).await;
    }
    Ok((StatusCode::ACCEPTED, Json(d)))
}
