//! Groups: `GET /api/sessions/{sid}/groups` lists the groups the session's account is in;
//! `POST` creates one; `GET|PATCH .../groups/{gid}` reads one in full or changes its subject,
//! description and settings; `POST .../groups/{gid}/participants` adds, removes, promotes or
//! demotes people (a result per person); the invite link is read and reset; a group is
//! joined by invite code and left. Everything is asked of WhatsApp at the time, so the
//! session must be connected (409 otherwise). Creating a group and adding or removing
//! people count each number as a send against the session's limits (429 `rate_limited`
//! with `Retry-After` when there is no room for all of them; nothing is done then).

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{JsonBody, PathParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::groups::{GroupDetails, GroupPatch, GroupSummary, MemberAction};

pub(super) fn routes() -> Vec<Route> {
    let read = Access::Scope(Scope::SessionsRead);
    let act = Access::Scope(Scope::MessagesSend);
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/groups",
            read,
            "List the groups the session's account is in, with their participants",
            get(list),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/groups",
            act,
            "Create a group (each participant counts as a send); a result per participant",
            post(create),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/groups/join",
            act,
            "Join a group by its invite code or link",
            post(join),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/groups/{gid}",
            read,
            "One group in full: subject, description, participants with phone and LID, admins, settings, invite link (for admins)",
            get(show),
        ),
        Route::new(
            Method::PATCH,
            "/api/sessions/{sid}/groups/{gid}",
            act,
            "Change a group's subject, description or settings (announce, locked, ephemeral_s, approval)",
            axum::routing::patch(update),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/groups/{gid}/participants",
            act,
            "Add, remove, promote or demote participants (adds and removes count as sends); a result per person",
            post(participants),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/groups/{gid}/invite",
            act,
            "The group's invite link (admins only)",
            get(invite),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/groups/{gid}/invite/reset",
            act,
            "Reset the invite link: the old one stops working",
            post(reset_invite),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/groups/{gid}/leave",
            act,
            "Leave the group",
            post(leave),
        ),
    ]
}

async fn list(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
) -> Result<Json<Vec<GroupSummary>>, ApiError> {
    Ok(Json(state.manager().groups(&sid).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    subject: String,
    #[serde(default)]
    participants: Vec<String>,
}

async fn create(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(body): JsonBody<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
    let (group, results) = state
        .manager()
        .create_group(&sid, &body.subject, &body.participants)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "group": group, "participants": results })),
    ))
}

async fn show(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
) -> Result<Json<GroupDetails>, ApiError> {
    Ok(Json(state.manager().group(&sid, &gid).await?))
}

async fn update(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
    JsonBody(patch): JsonBody<GroupPatch>,
) -> Result<Json<GroupDetails>, ApiError> {
    Ok(Json(
        state.manager().update_group(&sid, &gid, &patch).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberChange {
    action: String,
    participants: Vec<String>,
}

async fn participants(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<MemberChange>,
) -> Result<Json<Value>, ApiError> {
    let action = MemberAction::parse(&body.action).ok_or_else(|| {
        ApiError::unprocessable(
            "invalid_group_request",
            format!(
                "action: add, remove, promote or demote, not '{}'",
                body.action
            ),
        )
    })?;
    let results = state
        .manager()
        .change_group_members(&sid, &gid, action, &body.participants)
        .await?;
    Ok(Json(json!({ "results": results })))
}

async fn invite(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let link = state.manager().group_invite(&sid, &gid, false).await?;
    Ok(Json(json!({ "link": link })))
}

async fn reset_invite(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let link = state.manager().group_invite(&sid, &gid, true).await?;
    Ok(Json(json!({ "link": link })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Join {
    code: String,
}

async fn join(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(body): JsonBody<Join>,
) -> Result<Json<Value>, ApiError> {
    let (id, pending) = state.manager().join_group(&sid, &body.code).await?;
    Ok(Json(json!({ "id": id, "pending_approval": pending })))
}

async fn leave(
    State(state): State<ApiState>,
    PathParams((sid, gid)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    state.manager().leave_group(&sid, &gid).await?;
    Ok(Json(json!({ "left": true })))
}
