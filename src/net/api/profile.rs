//! The session's own profile: `GET /api/sessions/{sid}/profile` (push name, about text,
//! profile picture, as WhatsApp has them) and `PATCH` (any of them; `picture: null` removes
//! the picture).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Deserializer};

use super::error::{JsonBody, PathParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::profile::{OwnProfile, ProfileChange};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/profile",
            Access::Scope(Scope::SessionsRead),
            "The session's own profile: push name, about text, profile picture (asked of WhatsApp)",
            get(show),
        ),
        Route::new(
            Method::PATCH,
            "/api/sessions/{sid}/profile",
            Access::Scope(Scope::SessionsWrite),
            "Change the session's push name, about text or profile picture (base64 JPEG; null removes it)",
            axum::routing::patch(change),
        ),
    ]
}

/// The body of `PATCH .../profile`: every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    push_name: Option<String>,
    about: Option<String>,
    /// Absent: unchanged; `null`: removed; a string: a base64 JPEG.
    #[serde(default, deserialize_with = "present")]
    picture: Option<Option<String>>,
}

/// A field that is present, even as `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

async fn show(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<OwnProfile>, ApiError> {
    Ok(Json(state.manager().profile(&sid).await?))
}

async fn change(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(p): JsonBody<Patch>,
) -> Result<Json<OwnProfile>, ApiError> {
    let picture = match p.picture {
        Some(Some(b64)) => Some(Some(B64.decode(b64.trim()).map_err(|e| {
            ApiError::unprocessable("invalid_profile", format!("picture: not base64: {e}"))
        })?)),
        Some(None) => Some(None),
        None => None,
    };
    let change = ProfileChange {
        push_name: p.push_name,
        about: p.about,
        picture,
    };
    Ok(Json(state.manager().set_profile(&sid, change).await?))
}
