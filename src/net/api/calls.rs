//! Calls: `GET /api/sessions/{sid}/calls` lists the session's recent calls (what
//! `call.received` and `call.rejected` told, and how each ended), `POST .../calls/{id}/reject`
//! declines one that still rings.

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{PathParams, QueryParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::store::calls::CallRecord;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/calls",
            Access::Scope(Scope::SessionsRead),
            "The session's recent calls, newest first",
            get(list),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/calls/{id}/reject",
            Access::Scope(Scope::MessagesSend),
            "Decline a call that still rings",
            post(reject),
        ),
    ]
}

pub(super) fn view(r: &CallRecord) -> Value {
    let mut v = serde_json::to_value(&r.info).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("rejected_by");
        obj.remove("reply_id");
        obj.insert("rejected_at".into(), json!(r.rejected_at));
        obj.insert("rejected_by".into(), json!(r.info.rejected_by));
        obj.insert("reply_id".into(), json!(r.info.reply_id));
        obj.insert("ended_at".into(), json!(r.ended_at));
        obj.insert("end_reason".into(), json!(r.end_reason));
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    QueryParams(p): QueryParams<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("invalid_query", "limit: 1 to 500"));
    }
    let calls = state.manager().calls(&sid, limit).await?;
    Ok(Json(Value::Array(calls.iter().map(view).collect())))
}

async fn reject(
    State(state): State<ApiState>,
    PathParams((sid, id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let rec = state.manager().reject_call(&sid, &id).await?;
    Ok(Json(view(&rec)))
}
