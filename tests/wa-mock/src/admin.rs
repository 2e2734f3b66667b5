//! The admin HTTP API, on the same address as the WebSocket:
//!
//! | route | body | does |
//! |---|---|---|
//! | `POST /admin/scan` | QR string (`?phone=` links to an existing account) | mock phone scans, returns the account JSON |
//! | `POST /admin/pair-code` | `{"phone","code"}` | mock phone enters a pair code |
//! | `GET /admin/stanzas` | `?device=&tag=&direction=&after=` | recorded stanzas |
//! | `GET /admin/accounts` | | accounts and devices |
//! | `POST /admin/accounts` | | creates an account without companions |
//! | `POST /admin/drop` | `{"phone","device"}` | drops a device's connection |
//! | `POST /admin/stream-error` | `{"phone","device","error":{"code":401}\|"replaced"}` | sends a stream error |
//! | `POST /admin/fail-next-login` | `{"phone"?, "failure":{"kind":"temp_ban","code":101,"expire_secs":3600}}` | connect failure on next login |
//! | `POST /admin/fault-next-message` | `{"phone"?, "fault":{"kind":"swallow"}\|{"kind":"refuse","code":479}}` | lose or refuse a client's next message |
//! | `POST /admin/refuse` | `{"secs"}` | refuse new connections for a while |
//! | `POST /admin/freeze` | `{"phone","device"}`, or `{}` for the whole server | stop answering (sockets stay open) |
//! | `POST /admin/thaw` | | end every freeze |
//! | `POST /admin/remove-device` | `{"phone","device"}` | unlink a companion |
//! | `GET /admin/groups` | | groups with subject, members, settings, invite code |
//! | `POST /admin/refuse-group-add` | `{"phone","refuse"?}` | the number's privacy refuses (or, with `"refuse":false`, allows) being added to groups |
//! | `POST /admin/demand-passkey` | | the next QR scan is answered with a passkey request |
//! | `POST /admin/profile` | `{"phone","about"?,"business"?,"about_hidden"?,"picture_hidden"?}` | change an account's profile |
//! | `GET /admin/media-cert` | | the media host's certificate (PEM) |
//! | `POST /admin/expire-media` | `{"direct_path"}` | downloads of that media answer 410 Gone |

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::error::Error;
use crate::server::{Inner, StanzaFilter, StreamError};
use crate::state::{DeviceAddr, LoginFailure, MessageFault};

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/admin/scan", post(scan))
        .route("/admin/pair-code", post(pair_code))
        .route("/admin/stanzas", get(stanzas))
        .route("/admin/accounts", get(accounts).post(create_account))
        .route("/admin/drop", post(drop_conn))
        .route("/admin/stream-error", post(stream_error))
        .route("/admin/fail-next-login", post(fail_next_login))
        .route("/admin/fault-next-message", post(fault_next_message))
        .route("/admin/refuse", post(refuse))
        .route("/admin/freeze", post(freeze))
        .route("/admin/thaw", post(thaw))
        .route("/admin/remove-device", post(remove_device))
        .route("/admin/groups", get(groups))
        .route("/admin/refuse-group-add", post(refuse_group_add))
        .route("/admin/call", post(offer_call))
        .route("/admin/profile", post(set_profile))
        .route("/admin/demand-passkey", post(demand_passkey))
        .route("/admin/media-cert", get(media_cert))
        .route("/admin/expire-media", post(expire_media))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::BadQr(_) => StatusCode::BAD_REQUEST,
            Error::UnknownRef(_) | Error::NoPairCodeRequest(_) | Error::UnknownAccount(_) => {
                StatusCode::NOT_FOUND
            }
            Error::WrongPairCode(_) | Error::PairRejected(_) | Error::PasskeyDemanded => {
                StatusCode::CONFLICT
            }
            Error::Timeout(..) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (
            status,
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct PhoneQuery {
    phone: Option<String>,
}

async fn scan(
    State(inner): State<Arc<Inner>>,
    Query(q): Query<PhoneQuery>,
    body: String,
) -> Response {
    match inner.scan(body.trim(), q.phone.as_deref()).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct PairCodeBody {
    phone: String,
    code: String,
}

async fn pair_code(State(inner): State<Arc<Inner>>, Json(b): Json<PairCodeBody>) -> Response {
    match inner.enter_pair_code(&b.phone, &b.code).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct ProfileBody {
    phone: String,
    #[serde(flatten)]
    change: crate::profile::ProfileChange,
}

async fn set_profile(State(inner): State<Arc<Inner>>, Json(b): Json<ProfileBody>) -> Response {
    done(inner.set_profile(&b.phone, b.change))
}

async fn demand_passkey(State(inner): State<Arc<Inner>>) -> Response {
    inner.lock().passkey_next = true;
    done(true)
}

async fn stanzas(State(inner): State<Arc<Inner>>, Query(f): Query<StanzaFilter>) -> Response {
    Json(inner.stanzas(&f)).into_response()
}

async fn accounts(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.accounts()).into_response()
}

async fn create_account(State(inner): State<Arc<Inner>>) -> Response {
    match inner.create_account() {
        Ok(phone) => Json(serde_json::json!({ "phone": phone })).into_response(),
        Err(e) => e.into_response(),
    }
}

fn done(found: bool) -> Response {
    if found {
        Json(serde_json::json!({ "ok": true })).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "device not connected" })),
        )
            .into_response()
    }
}

async fn drop_conn(State(inner): State<Arc<Inner>>, Json(d): Json<DeviceAddr>) -> Response {
    done(inner.drop_connection(&d))
}

#[derive(Deserialize)]
struct StreamErrorBody {
    phone: String,
    device: u16,
    error: StreamError,
}

async fn stream_error(State(inner): State<Arc<Inner>>, Json(b): Json<StreamErrorBody>) -> Response {
    done(inner.stream_error(
        &DeviceAddr {
            phone: b.phone,
            device: b.device,
        },
        b.error,
    ))
}

#[derive(Deserialize)]
struct FailBody {
    phone: Option<String>,
    failure: LoginFailure,
}

async fn fail_next_login(State(inner): State<Arc<Inner>>, Json(b): Json<FailBody>) -> Response {
    inner.fail_next_login(b.phone.as_deref(), b.failure);
    done(true)
}

#[derive(Deserialize)]
struct FaultBody {
    phone: Option<String>,
    fault: MessageFault,
}

async fn fault_next_message(State(inner): State<Arc<Inner>>, Json(b): Json<FaultBody>) -> Response {
    inner.fault_next_message(b.phone.as_deref(), b.fault);
    done(true)
}

#[derive(Deserialize)]
struct RefuseBody {
    secs: u64,
}

async fn refuse(State(inner): State<Arc<Inner>>, Json(b): Json<RefuseBody>) -> Response {
    inner.refuse_connections(Duration::from_secs(b.secs));
    done(true)
}

/// Which connection to freeze; neither field: the whole server.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeBody {
    phone: Option<String>,
    device: Option<u16>,
}

async fn freeze(State(inner): State<Arc<Inner>>, Json(b): Json<FreezeBody>) -> Response {
    match (b.phone, b.device) {
        (None, None) => {
            inner.freeze_server();
            done(true)
        }
        (Some(phone), Some(device)) => done(inner.freeze_connection(&DeviceAddr { phone, device })),
        _ => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": "give both phone and device, or neither" })),
        )
            .into_response(),
    }
}

async fn thaw(State(inner): State<Arc<Inner>>) -> Response {
    inner.thaw();
    done(true)
}

async fn remove_device(State(inner): State<Arc<Inner>>, Json(d): Json<DeviceAddr>) -> Response {
    done(inner.remove_device(&d))
}

async fn groups(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.groups()).into_response()
}

#[derive(Deserialize)]
struct RefuseGroupAddBody {
    phone: String,
    #[serde(default = "yes")]
    refuse: bool,
}

fn yes() -> bool {
    true
}

async fn refuse_group_add(
    State(inner): State<Arc<Inner>>,
    Json(b): Json<RefuseGroupAddBody>,
) -> Response {
    inner.refuse_group_add(&b.phone, b.refuse);
    done(true)
}

#[derive(Deserialize)]
struct CallBody {
    /// The caller's phone number (an account).
    caller: String,
    /// The callee's phone number (an account).
    callee: String,
    #[serde(default)]
    video: bool,
}

/// `caller` calls `callee`: `{"call_id"}`, or 404 for an unknown account.
async fn offer_call(State(inner): State<Arc<Inner>>, Json(b): Json<CallBody>) -> Response {
    match crate::calls::offer(&mut inner.lock(), &b.caller, &b.callee, b.video) {
        Some(id) => Json(serde_json::json!({ "call_id": id })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "unknown account" })),
        )
            .into_response(),
    }
}

async fn media_cert(State(inner): State<Arc<Inner>>) -> Response {
    match &inner.media {
        Some(m) => m.cert_pem.clone().into_response(),
        None => (StatusCode::NOT_FOUND, "media host disabled").into_response(),
    }
}

#[derive(Deserialize)]
struct ExpireBody {
    direct_path: String,
}

async fn expire_media(State(inner): State<Arc<Inner>>, Json(b): Json<ExpireBody>) -> Response {
    match inner
        .media
        .as_ref()
        .is_some_and(|m| m.expire(&b.direct_path))
    {
        true => Json(serde_json::json!({ "ok": true })).into_response(),
        false => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no media stored at that path" })),
        )
            .into_response(),
    }
}
