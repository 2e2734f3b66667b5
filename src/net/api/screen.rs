//! `GET /api/display.png`: the screen's current frame, as the device shows it.

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/display.png",
        Access::Scope(Scope::SessionsRead),
        "The display's current frame as PNG",
        get(frame),
    )]
}

async fn frame(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let none = || {
        ApiError::not_found(
            "no_frame",
            "the display has drawn no frame yet (or display.backend cannot run here)",
        )
    };
    let png = state.display().and_then(|d| d.png()).ok_or_else(none)?;
    let png = png.map_err(|e| ApiError::internal(format!("cannot encode the frame: {e}")))?;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png,
    )
        .into_response())
}
