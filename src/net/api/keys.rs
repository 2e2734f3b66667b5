//! API keys (`admin`): create (the key is in the answer, once), list, show, revoke.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use super::error::{JsonBody, PathParams};
use super::{Access, ApiError, ApiState, Route};
use crate::auth::{self, KeySpec, NewKey, Scope};
use crate::events::now_ms;
use crate::store::keys::{self, KeyRecord, Revoked};

pub(super) fn routes() -> Vec<Route> {
    let admin = Access::Scope(Scope::Admin);
    vec![
        Route::new(
            Method::POST,
            "/api/keys",
            admin,
            "Create an API key (shown once)",
            post(create),
        ),
        Route::new(Method::GET, "/api/keys", admin, "List API keys", get(list)),
        Route::new(
            Method::GET,
            "/api/keys/{id}",
            admin,
            "Show one API key",
            get(show),
        ),
        Route::new(
            Method::DELETE,
            "/api/keys/{id}",
            admin,
            "Revoke an API key",
            delete(revoke),
        ),
    ]
}

/// A key as listings show it: never the secret, never the hash.
#[derive(Debug, Serialize)]
pub(crate) struct KeyView {
    id: String,
    name: Option<String>,
    scopes: Vec<Scope>,
    sessions: Option<Vec<String>>,
    /// What the key starts with, to recognize it.
    prefix: String,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<KeyRecord> for KeyView {
    fn from(r: KeyRecord) -> Self {
        KeyView {
            prefix: format!("{}{}_", auth::KEY_PREFIX, r.id),
            id: r.id,
            name: r.name,
            scopes: r.scopes,
            sessions: r.sessions,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A key just made: the view plus the key itself.
#[derive(Debug, Serialize)]
pub(crate) struct CreatedKey {
    /// The whole key; shown this once.
    key: String,
    #[serde(flatten)]
    view: KeyView,
}

pub(crate) fn created(new: NewKey) -> CreatedKey {
    CreatedKey {
        key: new.token,
        view: new.record.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    scopes: Vec<String>,
    #[serde(default)]
    sessions: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
}

async fn create(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let scopes = body
        .scopes
        .iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()?;
    let spec = KeySpec {
        scopes,
        sessions: body.sessions,
        name: body.name,
    };
    let new = auth::create_key(state.store(), spec).await?;
    // A key made through the API means setup is long over; keep the handle in step anyway.
    state.setup().close();
    Ok((StatusCode::CREATED, Json(created(new))))
}

async fn list(State(state): State<ApiState>) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = state.store().read(keys::list).await?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

fn key_not_found(id: &str) -> ApiError {
    ApiError::not_found("key_not_found", format!("no API key with id '{id}'"))
}

async fn show(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<Json<KeyView>, ApiError> {
    let key = id.clone();
    let rec = state
        .store()
        .read(move |txn| keys::get(txn, &key))
        .await?
        .ok_or_else(|| key_not_found(&id))?;
    Ok(Json(rec.into()))
}

async fn revoke(
    State(state): State<ApiState>,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let key = id.clone();
    let outcome = state
        .store()
        .write(move |txn| keys::revoke(txn, &key, now_ms(), true))
        .await?;
    match outcome {
        Revoked::Done(_) => {
            tracing::info!(key = %id, "API key revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Revoked::NotFound => Err(key_not_found(&id)),
        Revoked::LastAdmin => Err(ApiError::conflict(
            "last_admin_key",
            "this is the last active admin key; create another admin key first",
        )),
    }
}
