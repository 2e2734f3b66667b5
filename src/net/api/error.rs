//! The one error shape of the API, and the extractors that produce it.
//!
//! Every refusal, ours or axum's, answers `{"error":{"code":"snake_case","message":"..."}}`
//! with the matching status. Handlers return `Result<_, ApiError>`; domain errors
//! ([`EngineError`], [`StoreError`], [`KeyError`], [`SetupError`]) become statuses in the
//! `From` impls here and nowhere else. Request bodies go through [`JsonBody`] (415 for a
//! wrong content type, 413 over `api.body_limit_kb`, 400 naming the field) and query strings
//! through [`QueryParams`].

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::auth::{KeyError, SetupError};
use crate::engine::EngineError;
use crate::store::StoreError;

/// An API refusal: status, stable code, human message.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn store_unavailable() -> Self {
        ApiError {
            retry_after: Some(30),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the store has failed; wagate is restarting",
            )
        }
    }

    /// The disk holding the store is full: nothing was written; it works again once space
    /// is freed, without a restart.
    pub fn insufficient_storage() -> Self {
        ApiError {
            retry_after: Some(60),
            ..ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                "the disk holding the store is full; nothing was written",
            )
        }
    }

    /// The body is over `api.body_limit_kb`.
    pub fn body_too_large() -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than api.body_limit_kb allows",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn route_not_found() -> Self {
        ApiError::not_found(
            "route_not_found",
            "no such route; see GET /api/openapi.json",
        )
    }

    /// The DNS-rebinding guard: the `Host` header does not name this device.
    pub fn host_not_allowed(host: Option<&str>) -> Self {
        let named = match host {
            Some(h) => format!("the Host header {h:?} does not name this device"),
            None => "the request has no Host header".to_owned(),
        };
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "host_not_allowed",
            format!(
                "{named}; use its address, host name or <hostname>.local, or add the name to \
                 api.host_names"
            ),
        )
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not take that method; see the Allow header",
        )
    }
}

/// The JSON body of every error.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "API error");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "API refusal");
        }
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"wagate\""),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_no_space() {
            tracing::warn!(error = %e, "store write refused: the disk is full");
            ApiError::insufficient_storage()
        } else if e.is_fatal() {
            ApiError::store_unavailable()
        } else {
            tracing::error!(error = %e, "store error");
            ApiError::internal(format!("store error: {e}"))
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            EngineError::NotFound(_) => ApiError::not_found("session_not_found", msg),
            EngineError::Exists(_) => ApiError::conflict("session_exists", msg),
            EngineError::InvalidId(_) => ApiError::unprocessable("invalid_session_id", msg),
            EngineError::NotPairing { .. } => ApiError::conflict("not_pairing", msg),
            EngineError::InvalidPhone(_) => ApiError::unprocessable("invalid_phone", msg),
            EngineError::PairCode(_) => ApiError::unprocessable("pair_code_failed", msg),
            EngineError::SessionFailed { .. } => ApiError::conflict("session_failed", msg),
            EngineError::NotConnected(_) => ApiError::conflict("session_not_connected", msg),
            EngineError::InvalidJid(_) => ApiError::unprocessable("invalid_jid", msg),
            EngineError::Numbers(_) => ApiError::unprocessable("invalid_numbers", msg),
            EngineError::Profile(_) => ApiError::unprocessable("invalid_profile", msg),
            EngineError::CheckBudget { retry_after_s } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "check_budget_exceeded", msg)
            },
            EngineError::InvalidSettings(_) => ApiError::unprocessable("invalid_setting", msg),
            EngineError::Duplicate { .. } => ApiError::conflict("duplicate_content", msg),
            EngineError::MessageNotFound(_) => ApiError::not_found("message_not_found", msg),
            EngineError::NotHeld { .. } => ApiError::conflict("not_held", msg),
            EngineError::NotChangeable { code, .. } => ApiError::conflict(code, msg),
            EngineError::InvalidEdit(_) => ApiError::unprocessable("invalid_field", msg),
            EngineError::CallNotFound(_) => ApiError::not_found("call_not_found", msg),
            EngineError::GroupRefused { kind, .. } => {
                use crate::engine::groups::GroupRefusal as R;
                match kind {
                    R::NotFound => ApiError::not_found("group_not_found", msg),
                    R::Forbidden => ApiError::forbidden("group_forbidden", msg),
                    R::Conflict => ApiError::conflict("group_changed", msg),
                    R::AlreadyMember => ApiError::conflict("already_member", msg),
                    R::InviteInvalid => ApiError::not_found("invite_not_found", msg),
                    R::InviteRevoked => ApiError::new(StatusCode::GONE, "invite_revoked", msg),
                }
            }
            EngineError::InvalidGroup(_) => ApiError::unprocessable("invalid_group_request", msg),
            EngineError::RateLimited { retry_after_s, .. } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", msg)
            },
            EngineError::Client(_) => ApiError::new(StatusCode::BAD_GATEWAY, "whatsapp_error", msg),
            EngineError::Store(e) => e.into(),
            EngineError::Closed => ApiError {
                retry_after: Some(5),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", msg)
            },
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Store(e) => e.into(),
            other => ApiError::unprocessable("invalid_key_spec", other.to_string()),
        }
    }
}

impl From<SetupError> for ApiError {
    fn from(e: SetupError) -> Self {
        let msg = e.to_string();
        match e {
            SetupError::Closed => ApiError::new(StatusCode::GONE, "setup_closed", msg),
            SetupError::WrongCode => ApiError::forbidden("wrong_setup_code", msg),
            SetupError::TooManyAttempts { retry_after_s } => ApiError {
                retry_after: Some(retry_after_s),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", msg)
            },
            SetupError::Key(e) => e.into(),
        }
    }
}

/// A JSON request body: `Content-Type: application/json` (or `+json`) required, the body
/// limit enforced, and a refusal that names the offending field.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

fn is_json(parts: &axum::http::HeaderMap) -> bool {
    let Some(ct) = parts
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::body_too_large()
            } else {
                ApiError::bad_request("unreadable_body", r.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Deserialize a JSON body, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else if path == "." {
            // Missing and unknown fields name themselves in serde's message.
            ApiError::bad_request("invalid_body", inner.to_string())
        } else {
            ApiError::bad_request("invalid_body", format!("field `{path}`: {inner}"))
        }
    })?;
    de.end().map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    Ok(value)
}

/// A query string, refused as 400 `invalid_query` naming the parameter.
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| QueryParams(v))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

/// Path parameters, refused as 400 `invalid_path` in the API's error shape (axum's own
/// rejection is plain text), e.g. a percent-encoded segment that is not UTF-8.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParams(v))
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))
    }
}
