//! Groups: `GET /api/sessions/{sid}/groups` lists the groups the session's account is in,
//! asked of WhatsApp on each call (so it needs the session connected).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::get;

use super::error::PathParams;
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::groups::GroupSummary;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::new(
        Method::GET,
        "/api/sessions/{sid}/groups",
        Access::Scope(Scope::SessionsRead),
        "List the groups the session's account is in, with their participants",
        get(list),
    )]
}

async fn list(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<Vec<GroupSummary>>, ApiError> {
    Ok(Json(state.manager().groups(&sid).await?))
}
