//! Messages: `POST /api/sessions/{sid}/messages/{kind}` accepts a message into the session's
//! durable queue (202 once committed), `GET .../messages/{id}` shows where it is, `DELETE`
//! cancels it while it has not started sending, `PATCH` queues an edit of it and
//! `POST .../revoke` a delete for everyone (both sent through the queue like messages,
//! `engine::change`). `GET .../messages` pages through the history, sent and received.

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde_json::{Value, json};

use super::error::{JsonBody, PathParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::change::Revoked;
use crate::engine::compose::{self, ComposeError};
use crate::store::queue::{Cancel, MessageRecord, MessageStatus};

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 200;

pub(super) fn routes() -> Vec<Route> {
    let send = Access::Scope(Scope::MessagesSend);
    let read = Access::Scope(Scope::SessionsRead);
    vec![
        Route::new(
            Method::POST,
            // One path parameter name per segment (the router's rule): on POST `{id}` is the
            // message kind.
            "/api/sessions/{sid}/messages/{id}",
            send,
            "Queue a message; {id} is its kind (text, image, video, audio, document, sticker, location, contact, poll, reaction, list, buttons, template, link_preview); 202 once it is durable",
            post(accept),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/messages/{id}",
            read,
            "Show a message and its status",
            get(show),
        ),
        Route::new(
            Method::DELETE,
            "/api/sessions/{sid}/messages/{id}",
            send,
            "Cancel a message that has not started sending",
            delete(cancel),
        ),
        Route::new(
            Method::PATCH,
            "/api/sessions/{sid}/messages/{id}",
            send,
            "Edit a sent message's text or caption (within WhatsApp's 15 minutes); 202 once the edit is queued",
            patch(edit),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/messages/{id}/revoke",
            send,
            "Delete a sent message for everyone (202 once queued); a message not sent yet is cancelled (200)",
            post(revoke),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/messages",
            read,
            "The session's sent and received messages, newest or oldest first, paged by cursor",
            get(super::history::list),
        ),
    ]
}

impl From<ComposeError> for ApiError {
    fn from(e: ComposeError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match &e {
            ComposeError::UnknownKind { .. } => "unknown_kind",
            ComposeError::Missing { .. } => "missing_field",
            ComposeError::Invalid { .. } => "invalid_field",
            ComposeError::BadRecipient { .. } => "invalid_recipient",
            ComposeError::TooLarge { .. } => "too_large",
            ComposeError::MediaMismatch { .. } => "internal",
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The public status: a message whose send is under way still counts as queued.
fn status_name(s: MessageStatus) -> &'static str {
    match s {
        MessageStatus::Queued | MessageStatus::Sending => "queued",
        MessageStatus::Held => "held",
        MessageStatus::Sent => "sent",
        MessageStatus::Delivered => "delivered",
        MessageStatus::Read => "read",
        MessageStatus::Cancelled => "cancelled",
        MessageStatus::Failed => "failed",
    }
}

pub(super) fn view(rec: &MessageRecord) -> Value {
    json!({
        "id": rec.id,
        "session": rec.session,
        "kind": rec.kind,
        "to": rec.to,
        "to_phone": rec.to_phone,
        "to_lid": rec.to_lid,
        "status": status_name(rec.status),
        "reason": rec.reason,
        "wa_id": rec.wa_id,
        "attempts": rec.attempts,
        "created_at": rec.created_at,
        "sent_at": rec.sent_at,
        "delivered_at": rec.delivered_at,
        "read_at": rec.read_at,
        "failed_at": rec.failed_at,
        "cancelled_at": rec.cancelled_at,
        "edited_at": rec.edited_at,
        "revoked_at": rec.revoked_at,
        "target": rec.target(),
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )
    };
    let key = v.to_str().map_err(|_| bad())?.trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// A send request: JSON, or multipart/form-data with the media as a file part.
struct SendBody {
    fields: Value,
    blob: Option<Vec<u8>>,
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Form fields that are not text in the JSON form.
const BOOL_FIELDS: &[&str] = &["voice", "gif", "multiple", "from_me"];
const NUMBER_FIELDS: &[&str] = &[
    "seconds",
    "width",
    "height",
    "page_count",
    "latitude",
    "longitude",
    "selectable_count",
];

/// Read a multipart send: one `file` part (the media) and text parts for the other fields
/// (`to`, `caption`, ...). The file part's type and name fill `mimetype` and `file_name` when
/// the form does not give them.
async fn read_multipart(mut form: Multipart) -> Result<SendBody, ApiError> {
    let bad = |m: String| ApiError::bad_request("invalid_multipart", m);
    let mut fields = serde_json::Map::new();
    let mut blob = None;
    let (mut part_type, mut part_name) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large()
        } else {
            bad(e.body_text())
        }
    })? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if blob.is_some() {
                return Err(bad("only one `file` part is allowed".into()));
            }
            part_type = field
                .content_type()
                .map(str::to_string)
                .filter(|t| t != "application/octet-stream");
            part_name = field.file_name().map(str::to_string);
            blob = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| bad(e.body_text()))?
                    .to_vec(),
            );
            continue;
        }
        if name.is_empty() || fields.contains_key(&name) {
            return Err(bad(format!("form field '{name}' is unnamed or repeated")));
        }
        let text = field.text().await.map_err(|e| bad(e.body_text()))?;
        let value = if BOOL_FIELDS.contains(&name.as_str()) {
            match text.as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return Err(bad(format!("{name}: true or false"))),
            }
        } else if NUMBER_FIELDS.contains(&name.as_str()) {
            serde_json::from_str::<serde_json::Number>(&text)
                .map(Value::Number)
                .map_err(|_| bad(format!("{name}: a number")))?
        } else {
            Value::String(text)
        };
        fields.insert(name, value);
    }
    let Some(bytes) = blob else {
        return Err(bad(
            "a multipart send needs a `file` part with the media".into()
        ));
    };
    fields.insert("upload".into(), Value::String("file".into()));
    if let Some(t) = part_type {
        fields.entry("mimetype").or_insert(Value::String(t));
    }
    if let Some(n) = part_name {
        fields.entry("file_name").or_insert(Value::String(n));
    }
    Ok(SendBody {
        fields: Value::Object(fields),
        blob: Some(bytes),
    })
}

async fn accept(
    State(state): State<ApiState>,
    PathParams((sid, kind)): PathParams<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let headers = req.headers().clone();
    let mgr = state.manager();
    // An unknown session is 404 before anything about the body.
    mgr.get(&sid).await?;
    let key = idempotency_key(&headers)?;
    let body = if is_multipart(&headers) {
        let form = Multipart::from_request(req, &state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
        read_multipart(form).await?
    } else {
        let JsonBody(fields) = JsonBody::<Value>::from_request(req, &state).await?;
        SendBody { fields, blob: None }
    };
    let mut fields = body.fields;
    // `file_name` is a document field; an uploaded file's name means nothing to other kinds.
    if kind != "document"
        && let Some(obj) = fields.as_object_mut()
        && body.blob.is_some()
    {
        obj.remove("file_name");
    }
    let done = queue_message(mgr, &sid, &kind, &fields, body.blob, key).await?;
    Ok(accepted(&sid, &done))
}

/// The 202 answer of an accepted message (an edit, a revoke): its id, status and recipient,
/// `Location`, and `Idempotent-Replayed` when the key named an earlier one.
fn accepted(sid: &str, done: &crate::store::queue::Enqueued) -> Response {
    let status = accepted_status(&done.record);
    let mut resp = (
        StatusCode::ACCEPTED,
        Json(json!({
            "id": done.record.id,
            "status": status,
            "to": done.record.to,
            "to_phone": done.record.to_phone,
            "to_lid": done.record.to_lid,
        })),
    )
        .into_response();
    if done.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    if let Ok(loc) =
        HeaderValue::from_str(&format!("/api/sessions/{sid}/messages/{}", done.record.id))
    {
        resp.headers_mut().insert(axum::http::header::LOCATION, loc);
    }
    resp
}

async fn edit(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let done = state.manager().edit(&sid, &id, &body, key).await?;
    Ok(accepted(&sid, &done))
}

async fn revoke(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    match state.manager().revoke(&sid, &id, key).await? {
        Revoked::Queued(done) => Ok(accepted(&sid, &done)),
        Revoked::Cancelled(rec) => Ok(Json(view(&rec)).into_response()),
    }
}

/// Queue a message of `kind` from its JSON fields (the API's body; an MQTT command's): the
/// same checks, the same durable queue, the same idempotency by `key`.
pub async fn queue_message(
    mgr: &crate::engine::SessionManager,
    sid: &str,
    kind: &str,
    fields: &Value,
    blob: Option<Vec<u8>>,
    key: Option<String>,
) -> Result<crate::store::queue::Enqueued, ApiError> {
    let outgoing = compose::parse(kind, fields)?;
    Ok(mgr.enqueue(sid, kind, &outgoing, blob, key).await?)
}

/// The status an accepted message is answered with (again for a replayed key): `held` when
/// the duplicate guard holds it, else `queued`.
pub fn accepted_status(rec: &MessageRecord) -> &'static str {
    if rec.status == MessageStatus::Held {
        "held"
    } else {
        "queued"
    }
}

/// The longest request id (`Idempotency-Key`, an MQTT command's `request_id`).
pub const MAX_REQUEST_ID: usize = MAX_IDEMPOTENCY_KEY;

fn no_message(id: &str) -> ApiError {
    ApiError::not_found(
        "message_not_found",
        format!("no message '{id}' in this session"),
    )
}

async fn show(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mgr = state.manager();
    mgr.get(&sid).await?;
    if let Some(rec) = mgr.message(&sid, &id).await? {
        return Ok(Json(view(&rec)));
    }
    // A received message: its record, with its edits and revoke.
    let (s, i) = (sid.clone(), id.clone());
    let rec = state
        .store()
        .read(move |t| crate::store::inbound::get(t, &s, &i))
        .await?
        .ok_or_else(|| no_message(&id))?;
    Ok(Json(super::history::in_view(&sid, &rec)))
}

async fn cancel(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mgr = state.manager();
    mgr.get(&sid).await?;
    let outcome = mgr.cancel(&sid, &id).await?;
    match outcome {
        Cancel::Cancelled(rec) => Ok(Json(view(&rec))),
        Cancel::TooLate(rec) => Err(ApiError::conflict(
            "too_late",
            format!(
                "message '{id}' is {}: only a message that has not started sending can be cancelled",
                status_name(rec.status)
            ),
        )),
        Cancel::NotFound => Err(no_message(&id)),
    }
}
