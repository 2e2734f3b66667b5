//! Sessions: list, create (pairing starts at once), show, delete, start / stop / logout, the
//! pairing QR in four formats, and linking by phone-number code.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::auth::{Principal, session_forbidden};
use super::error::{JsonBody, PathParams, QueryParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::display;
use crate::engine::{EngineError, SessionInfo};
use crate::events::SessionState;

pub(super) fn routes() -> Vec<Route> {
    let read = Access::Scope(Scope::SessionsRead);
    let write = Access::Scope(Scope::SessionsWrite);
    vec![
        Route::new(
            Method::GET,
            "/api/sessions",
            read,
            "List sessions",
            get(list),
        ),
        Route::new(
            Method::POST,
            "/api/sessions",
            write,
            "Create a session; it starts pairing at once",
            post(create),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}",
            read,
            "Show a session",
            get(show),
        ),
        Route::new(
            Method::DELETE,
            "/api/sessions/{sid}",
            write,
            "Delete a session and every key it holds",
            delete(remove),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/start",
            write,
            "Start a stopped or failed session",
            post(start),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/stop",
            write,
            "Stop a session (it stays stopped across restarts)",
            post(stop),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/logout",
            write,
            "Unlink the device and wipe the session's keys",
            post(logout),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/qr",
            read,
            "The pairing QR code: PNG, SVG, JSON or terminal text",
            get(qr),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/pair-code",
            write,
            "Link by phone number: get the 8-character code to type on the phone",
            post(pair_code),
        ),
    ]
}

/// A session as the API shows it: `id`, `state`, `reason` (why it failed or is
/// disconnected; null otherwise), `phone`,
/// `lid`, `enabled`, `created_at`, plus the state's own fields (`expires_at` and `code` for
/// `qr`, `since` for `connected` and `disconnected`, `attempts`, `until`, `message`).
pub(crate) fn view(info: &SessionInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(info).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.entry("reason").or_insert(serde_json::Value::Null);
    }
    v
}

async fn list(
    State(state): State<ApiState>,
    key: Principal,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    let sessions = state.manager().list().await?;
    Ok(Json(
        sessions
            .iter()
            .filter(|s| key.allows_session(&s.id))
            .map(view)
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSession {
    id: String,
}

async fn create(
    State(state): State<ApiState>,
    key: Principal,
    JsonBody(body): JsonBody<CreateSession>,
) -> Result<Response, ApiError> {
    if !crate::engine::valid_session_id(&body.id) {
        return Err(EngineError::InvalidId(body.id).into());
    }
    if !key.allows_session(&body.id) {
        return Err(session_forbidden(&body.id));
    }
    let info = state.manager().create(&body.id, true).await?;
    let mut resp = (StatusCode::CREATED, Json(view(&info))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/sessions/{}", info.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(resp)
}

async fn show(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&state.manager().get(&sid).await?)))
}

async fn remove(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    state.manager().delete(&sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&state.manager().start(&sid).await?)))
}

async fn stop(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&state.manager().stop(&sid).await?)))
}

async fn logout(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(view(&state.manager().logout(&sid).await?)))
}

/// The formats `GET /api/sessions/{sid}/qr` can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum QrFormat {
    Png,
    Svg,
    Json,
    Text,
}

impl QrFormat {
    fn of_media(media: &str) -> Option<QrFormat> {
        match media {
            "image/png" | "image/*" | "*/*" => Some(QrFormat::Png),
            "image/svg+xml" => Some(QrFormat::Svg),
            "application/json" => Some(QrFormat::Json),
            "text/plain" | "text/*" => Some(QrFormat::Text),
            _ => None,
        }
    }
}

/// Pick a format from `Accept` (q-values honoured; PNG when absent). `None`: nothing we
/// serve is acceptable.
pub(crate) fn negotiate(accept: Option<&str>) -> Option<QrFormat> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(QrFormat::Png);
    };
    let mut ranges: Vec<(f32, usize, &str)> = Vec::new();
    for (i, part) in accept.split(',').enumerate() {
        let mut bits = part.split(';');
        let media = bits.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in bits {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q > 0.0 {
            ranges.push((q, i, media));
        }
    }
    // Highest q first; ties keep the client's order.
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges
        .iter()
        .find_map(|(_, _, m)| QrFormat::of_media(&m.to_ascii_lowercase()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QrQuery {
    #[serde(default)]
    format: Option<QrFormat>,
}

#[derive(Debug, Serialize)]
struct QrJson {
    code: String,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pair_code: Option<String>,
}

/// Pixels per module in the PNG (a 61-module symbol becomes 488 px).
const PNG_SCALE: u32 = 8;

async fn qr(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    QueryParams(query): QueryParams<QrQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let format = match query.format {
        Some(f) => f,
        None => negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok())).ok_or_else(
            || {
                ApiError::new(
                    StatusCode::NOT_ACCEPTABLE,
                    "not_acceptable",
                    "the QR code comes as image/png, image/svg+xml, application/json or text/plain",
                )
            },
        )?,
    };
    let info = state.manager().get(&sid).await?;
    let (code, expires_at, pair_code) = match info.state {
        SessionState::Qr {
            code,
            expires_at,
            pair_code,
        } if !code.is_empty() => (code, expires_at, pair_code),
        other => {
            return Err(EngineError::NotPairing {
                id: sid,
                state: other.name(),
            }
            .into());
        }
    };
    let render_err = |e: display::qr::QrError| ApiError::internal(e.to_string());
    let (content_type, body): (&str, Body) = match format {
        QrFormat::Png => (
            "image/png",
            display::qr::qr_png(&code, PNG_SCALE)
                .map_err(render_err)?
                .into(),
        ),
        QrFormat::Svg => (
            "image/svg+xml",
            display::qr::qr_svg(&code, PNG_SCALE)
                .map_err(render_err)?
                .into(),
        ),
        QrFormat::Text => (
            "text/plain; charset=utf-8",
            display::terminal::qr_text(&code)
                .map_err(render_err)?
                .into(),
        ),
        QrFormat::Json => {
            let json = serde_json::to_vec(&QrJson {
                code,
                expires_at,
                pair_code,
            })
            .map_err(|e| ApiError::internal(e.to_string()))?;
            ("application/json", json.into())
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // The code rotates every 20 s; never cache it.
            (header::CACHE_CONTROL, "no-store"),
            (header::VARY, "Accept"),
        ],
        body,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PairCodeBody {
    phone: String,
}

async fn pair_code(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(body): JsonBody<PairCodeBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let code = state.manager().pair_code(&sid, &body.phone).await?;
    Ok(Json(serde_json::json!({ "code": code })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None), Some(QrFormat::Png));
        assert_eq!(negotiate(Some("image/svg+xml")), Some(QrFormat::Svg));
        assert_eq!(negotiate(Some("application/json")), Some(QrFormat::Json));
        assert_eq!(negotiate(Some("text/html, */*;q=0.1")), Some(QrFormat::Png));
        assert_eq!(
            negotiate(Some("image/png;q=0.5, image/svg+xml")),
            Some(QrFormat::Svg)
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("application/json;q=0")), None);
    }
}
