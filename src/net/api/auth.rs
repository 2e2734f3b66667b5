//! The key check: `Authorization: Bearer wgk_<id>_<secret>` on every route but the public
//! ones.
//!
//! Refusals, in the order they are checked:
//!
//! | case | status | code |
//! |---|---|---|
//! | no `Authorization` header | 401 | `missing_key` |
//! | not `Bearer wgk_<id>_<secret>` | 401 | `malformed_key` |
//! | unknown id, or the secret does not match | 401 | `invalid_key` |
//! | revoked | 401 | `revoked_key` |
//! | the route's scope missing (and no `admin`) | 403 | `insufficient_scope` |
//! | `{sid}` in the path is not one of the key's sessions | 403 | `session_forbidden` |
//!
//! A key limited to sessions gets 403 for any other session id, whether that session exists
//! or not (so it learns nothing about the others); lists and the event stream leave the
//! other sessions out. The check reads the key from the store on every request (a redb read
//! on a blocking thread: microseconds), so a revocation holds at once.

use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{Access, ApiError, ApiState};
use crate::auth::{self, Scope};
use crate::store::keys::KeyRecord;

/// The key a request was authorized with.
#[derive(Debug, Clone)]
pub struct Principal(pub Arc<KeyRecord>);

impl Principal {
    pub fn key(&self) -> &KeyRecord {
        &self.0
    }

    pub fn allows_session(&self, id: &str) -> bool {
        self.0.allows_session(id)
    }

    /// 403 unless the key may use session `id`.
    pub fn check_session(&self, id: &str) -> Result<(), ApiError> {
        if self.allows_session(id) {
            Ok(())
        } else {
            Err(session_forbidden(id))
        }
    }
}

pub(crate) fn session_forbidden(id: &str) -> ApiError {
    ApiError::forbidden(
        "session_forbidden",
        format!("this key is not allowed to use session '{id}'"),
    )
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("missing_key", "this route needs a key"))
    }
}

/// Check the bearer key against the route's access rule.
async fn authorize(
    state: &ApiState,
    headers: &HeaderMap,
    access: Access,
) -> Result<KeyRecord, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing_key",
            "send an API key as Authorization: Bearer wgk_...",
        ));
    };
    let malformed = || {
        ApiError::unauthorized(
            "malformed_key",
            "the Authorization header must be Bearer wgk_<id>_<secret>",
        )
    };
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || auth::token_id(token).is_none() {
        return Err(malformed());
    }
    let key = auth::lookup(state.store(), token)
        .await?
        .ok_or_else(|| ApiError::unauthorized("invalid_key", "unknown API key"))?;
    if key.is_revoked() {
        return Err(ApiError::unauthorized(
            "revoked_key",
            "this API key was revoked",
        ));
    }
    if let Access::Scope(scope) = access
        && !key.allows(scope)
    {
        return Err(insufficient(scope));
    }
    Ok(key)
}

fn insufficient(scope: Scope) -> ApiError {
    ApiError::forbidden(
        "insufficient_scope",
        format!("this key lacks the '{scope}' scope"),
    )
}

/// The per-route layer: authorize, check `{sid}`, and hand the key to the handler.
pub(super) async fn require(
    State((state, access)): State<(ApiState, Access)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut req: Request,
    next: Next,
) -> Response {
    let key = match authorize(&state, req.headers(), access).await {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    if let Ok(params) = &params
        && let Some((_, sid)) = params.iter().find(|(name, _)| *name == "sid")
        && !key.allows_session(sid)
    {
        return session_forbidden(sid).into_response();
    }
    req.extensions_mut().insert(Principal(Arc::new(key)));
    next.run(req).await
}
