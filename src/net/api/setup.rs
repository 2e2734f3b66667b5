//! First-boot setup: `GET /api/setup` (is it open?) and `POST /api/setup {"code"}` (the
//! first admin key, once). No key needed: there is none yet.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Deserialize;

use super::error::JsonBody;
use super::keys::{CreatedKey, created};
use super::{Access, ApiError, ApiState, Route};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/setup",
            Access::Public,
            "Whether first-boot setup is open",
            get(status),
        ),
        Route::new(
            Method::POST,
            "/api/setup",
            Access::Public,
            "Claim the first admin key with the setup code (once)",
            axum::routing::post(claim),
        ),
    ]
}

async fn status(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "open": state.setup().is_open() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    code: String,
}

async fn claim(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<Claim>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let new = state.setup().claim(state.store(), &body.code).await?;
    Ok((StatusCode::CREATED, Json(created(new))))
}
