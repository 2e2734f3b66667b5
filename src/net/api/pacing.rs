//! Pacing: a session's anti-ban settings (`GET/PUT /api/sessions/{sid}/settings`), its
//! queue as the send worker sees it (`GET /api/sessions/{sid}/queue`), and releasing a
//! message the duplicate guard held (`POST .../messages/{id}/release`).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::error::{JsonBody, PathParams};
use super::messages::view;
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::manager::SettingsInfo;
use crate::engine::pacing::Overrides;

pub(super) fn routes() -> Vec<Route> {
    let read = Access::Scope(Scope::SessionsRead);
    let write = Access::Scope(Scope::SessionsWrite);
    let send = Access::Scope(Scope::MessagesSend);
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/settings",
            read,
            "The session's pacing: effective settings, its overrides, the platform defaults, warm-up",
            get(show_settings),
        ),
        Route::new(
            Method::PUT,
            "/api/sessions/{sid}/settings",
            write,
            "Replace the session's pacing overrides ({} follows the platform defaults); refused with the field named unless valid",
            axum::routing::put(put_settings),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/queue",
            read,
            "The session's send queue: depth, next send estimate, held messages, why it is paused",
            get(show_queue),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/messages/{id}/release",
            send,
            "Release a message the duplicate guard held: it is queued again in its place",
            post(release),
        ),
    ]
}

fn settings_json(info: SettingsInfo) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(info)
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

async fn show_settings(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    settings_json(state.manager().settings(&sid).await?)
}

async fn put_settings(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(overrides): JsonBody<Overrides>,
) -> Result<Json<Value>, ApiError> {
    settings_json(state.manager().set_settings(&sid, overrides).await?)
}

async fn show_queue(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let q = state.manager().queue(&sid).await?;
    let held: Vec<Value> = q.held.iter().map(view).collect();
    let mut v = serde_json::to_value(&q).map_err(|e| ApiError::internal(e.to_string()))?;
    v["held"] = Value::Array(held);
    Ok(Json(v))
}

async fn release(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let rec = state.manager().release(&sid, &id).await?;
    Ok(Json(json!(view(&rec))))
}
