//! Contacts and identities: is a number on WhatsApp (`GET .../contacts/{number}`, and
//! `POST .../contacts/check` for up to 500), paced by the session's check budget and cached;
//! the phone number behind a LID and the LID of a phone number, as the session's client
//! learned them (`GET .../lids/{lid}`, `GET .../lids/pn/{phone}`).

use axum::Json;
use axum::extract::State;
use axum::http::Method;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use whatsapp_rust::Jid;

use super::error::{JsonBody, PathParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::Scope;
use crate::engine::contacts::{CheckOutcome, ContactInfo};
use crate::store::wa_backend::Identity;

pub(super) fn routes() -> Vec<Route> {
    let check = Access::Scope(Scope::MessagesSend);
    let read = Access::Scope(Scope::SessionsRead);
    vec![
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/contacts/{number}",
            check,
            "Is a number on WhatsApp: phone JID, LID, business, profile picture, about (cached; paced by the session's check budget, 429 over it)",
            get(one),
        ),
        Route::new(
            Method::POST,
            "/api/sessions/{sid}/contacts/check",
            check,
            "Check up to 500 numbers: what the cache and the check budget allow now, the rest deferred with when to ask again",
            post(many),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/lids/{lid}",
            read,
            "The phone number behind a LID, as the session learned it",
            get(by_lid),
        ),
        Route::new(
            Method::GET,
            "/api/sessions/{sid}/lids/pn/{phone}",
            read,
            "The LID of a phone number, as the session learned it",
            get(by_phone),
        ),
    ]
}

async fn one(
    State(state): State<ApiState>,
    PathParams((sid, number)): PathParams<(String, String)>,
) -> Result<Json<ContactInfo>, ApiError> {
    Ok(Json(state.manager().contact(&sid, &number).await?))
}

/// `POST .../contacts/check`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckRequest {
    numbers: Vec<String>,
}

async fn many(
    State(state): State<ApiState>,
    PathParams(sid): PathParams<String>,
    JsonBody(req): JsonBody<CheckRequest>,
) -> Result<Json<CheckOutcome>, ApiError> {
    Ok(Json(
        state.manager().check_contacts(&sid, &req.numbers).await?,
    ))
}

/// A LID and its phone number, as JIDs.
#[derive(Debug, Serialize)]
struct IdentityView {
    /// `<digits>@lid`.
    lid: String,
    /// `<digits>@s.whatsapp.net`.
    phone: String,
    /// Unix seconds: when the session learned the pair, and when it last confirmed it (null
    /// when the client did not record it).
    learned_at: Option<i64>,
    updated_at: Option<i64>,
    /// How the session learned it (`usync`, `peer_pn_message`, ...).
    source: String,
}

fn view(i: Identity) -> IdentityView {
    IdentityView {
        lid: Jid::lid(i.lid.as_str()).to_string(),
        phone: Jid::pn(i.phone.as_str()).to_string(),
        learned_at: i.learned_at,
        updated_at: i.updated_at,
        source: i.source,
    }
}

fn unknown(what: &str) -> ApiError {
    ApiError::not_found(
        "identity_not_found",
        format!("the session has not learned {what}"),
    )
}

async fn by_lid(
    State(state): State<ApiState>,
    PathParams((sid, lid)): PathParams<(String, String)>,
) -> Result<Json<IdentityView>, ApiError> {
    match state.manager().identity_by_lid(&sid, &lid).await? {
        Some(i) => Ok(Json(view(i))),
        None => Err(unknown(&format!("the phone number of {lid}"))),
    }
}

async fn by_phone(
    State(state): State<ApiState>,
    PathParams((sid, phone)): PathParams<(String, String)>,
) -> Result<Json<IdentityView>, ApiError> {
    match state.manager().identity_by_phone(&sid, &phone).await? {
        Some(i) => Ok(Json(view(i))),
        None => Err(unknown(&format!("the LID of {phone}"))),
    }
}
