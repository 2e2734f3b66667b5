//! Received messages: `GET /api/sessions/{sid}/messages/{id}/media` streams a received
//! message's media (downloaded and decrypted on first use into the on-disk cache), and
//! `POST /api/sessions/{sid}/messages/{id}/read` marks a received message read.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use super::error::PathParams;
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::MediaError;

/// Bytes read from the file per chunk of the answer.
const CHUNK: usize = 64 * 1024;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/messages/{id}/media",
            Access::Scope(Scope::SessionsRead),
            "Download a received message's media (decrypted; streamed from the on-disk cache, downloaded from WhatsApp on first use)",
            get(media),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/messages/{id}/read",
            Access::Scope(Scope::MessagesSend),
            "Mark a received message read (a read receipt to its sender)",
            post(read),
        ),
    ]
}

impl From<MediaError> for ApiError {
    fn from(e: MediaError) -> Self {
        match &e {
            MediaError::NotFound => ApiError::not_found("media_not_found", e.to_string()),
            // Gone for good, like a message the retention removed: a 404, with its own code.
            MediaError::Expired => ApiError::not_found("media_expired", e.to_string()),
            MediaError::NotConnected(_) => {
                ApiError::new(StatusCode::CONFLICT, "not_connected", e.to_string())
            }
            MediaError::Other(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "media_failed", e.to_string())
            }
        }
    }
}

/// A `Content-Disposition` filename: printable ASCII without quotes or backslashes.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.trim().is_empty() {
        "file".into()
    } else {
        s
    }
}

async fn media(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Response, ApiError> {
    let mgr = state.manager();
    mgr.get(&sid).await?;
    let file = mgr.media(&sid, &id).await?;
    let f = tokio::fs::File::open(&file.path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot open cached media: {e}")))?;
    let size = file.size;
    // Stream the file in chunks: never the whole of it in memory.
    let stream = futures_util::stream::unfold((f, 0u64), move |(mut f, sent)| async move {
        if sent >= size {
            return None;
        }
        let mut buf = vec![0u8; CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (f, sent + n as u64),
                ))
            }
            Err(e) => Some((Err(e), (f, size))),
        }
    });
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&file.mimetype)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    let disposition = match (&file.file_name, file.kind.as_str()) {
        (Some(n), _) => Some(format!("attachment; filename=\"{}\"", safe_name(n))),
        (None, "document") => Some("attachment".to_string()),
        _ => None,
    };
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    h.insert(
        "x-wagate-cache",
        HeaderValue::from_static(if file.cached { "hit" } else { "miss" }),
    );
    Ok(resp)
}

async fn read(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let mgr = state.manager();
    mgr.get(&sid).await?;
    match mgr.read_inbound(&sid, &id).await? {
        Some(()) => Ok(Json(json!({ "id": id, "read": true }))),
        None => Err(ApiError::not_found(
            "message_not_found",
            format!("no received message '{id}' in session '{sid}'"),
        )),
    }
}
