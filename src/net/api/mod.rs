//! The LAN HTTP API (axum): one file per resource, one error type, one route table.
//!
//! # The route table
//!
//! Every resource module returns its [`Route`]s: method, path, who may call it ([`Access`]),
//! a summary, and the handler. [`router`] builds the axum router from that table and wraps
//! each protected route in the key check for its scope, so the access rule of a route is
//! written once, beside it; [`routes`] lists the same table without handlers (the OpenAPI
//! test and the auth matrix test walk it). A new resource (`messages.rs`, `webhooks.rs`) is
//! one module with a `routes()` and one line in [`all_routes`].
//!
//! # Layers, outside in
//!
//! request counter (for `/metrics`) → store guard (503 once the store has failed; health
//! answers for itself) → host guard (below) → body limit (`api.body_limit_kb`) → per-route key
//! check → handler.
//!
//! # The DNS-rebinding guard
//!
//! A web page elsewhere can point a name it controls at this device's address and have the
//! visitor's browser call the API as a same-origin page. Keys stop that for protected routes;
//! the routes that need no key and change the device (first-boot setup) and the dashboard at
//! `/` therefore answer only requests whose `Host` header names the device: one of its
//! addresses, `localhost`, its host name, `<hostname>.local` or a name in `api.host_names`.
//! Others get 421 `host_not_allowed`.
//! Unknown routes and wrong methods answer JSON errors too ([`error::ApiError`]).

pub mod auth;
mod calls;
mod conn;
mod contacts;
pub mod error;
mod events;
mod groups;
mod health;
mod history;
mod inbound;
mod keys;
mod messages;
mod metrics;
mod openapi;
mod pacing;
mod profile;
mod screen;
mod sessions;
mod setup;
pub mod tls;
mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tokio::sync::watch;

use crate::auth::{Scope, Setup};
use crate::engine::SessionManager;
use crate::events::Bus;
use crate::store::Store;

pub use error::ApiError;
pub use messages::{MAX_REQUEST_ID, accepted_status, queue_message};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No key (health, setup).
    Public,
    /// Any valid key.
    AnyKey,
    /// A key with this scope (or `admin`).
    Scope(Scope),
}

/// One route as the table lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// axum syntax: `/api/sessions/{sid}`.
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

impl RouteInfo {
    /// Whether the path names one session (`{sid}`): keys limited to sessions are checked
    /// against it.
    pub fn has_session(&self) -> bool {
        self.path.contains("{sid}")
    }
}

/// A route with its handler.
pub(crate) struct Route {
    pub info: RouteInfo,
    pub handler: MethodRouter<ApiState>,
}

impl Route {
    pub fn new(
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        handler: MethodRouter<ApiState>,
    ) -> Route {
        Route {
            info: RouteInfo {
                method,
                path,
                access,
                summary,
            },
            handler,
        }
    }
}

fn all_routes() -> Vec<Route> {
    let mut v = Vec::new();
    v.extend(health::routes());
    v.extend(setup::routes());
    v.extend(keys::routes());
    v.extend(sessions::routes());
    v.extend(messages::routes());
    v.extend(inbound::routes());
    v.extend(pacing::routes());
    v.extend(webhooks::routes());
    v.extend(groups::routes());
    v.extend(contacts::routes());
    v.extend(calls::routes());
    v.extend(profile::routes());
    v.extend(screen::routes());
    v.extend(events::routes());
    v.extend(metrics::routes());
    v.extend(openapi::routes());
    // The dashboard's page and assets (`/`, `/dashboard/...`): public, they hold no data.
    v.extend(crate::net::dashboard::routes());
    v
}

/// Every route of the API: the table [`router`] is built from.
pub fn routes() -> Vec<RouteInfo> {
    all_routes().into_iter().map(|r| r.info).collect()
}

/// Counters the API keeps for `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct ApiCounters {
    /// Responses by status class: 1xx..5xx.
    pub responses: [AtomicU64; 5],
    /// Open `/api/events` streams.
    pub sse_clients: AtomicU64,
}

struct Inner {
    mgr: SessionManager,
    store: Store,
    bus: Bus,
    setup: Setup,
    body_limit: usize,
    started: Instant,
    counters: ApiCounters,
    /// Set when the server shuts down: open event streams end.
    closing: watch::Sender<bool>,
    /// The screen's last frame, when a display runs.
    display: std::sync::OnceLock<crate::display::LastFrame>,
    /// The webhook forwarder, when one runs.
    webhooks: std::sync::OnceLock<crate::net::webhook::Webhooks>,
    /// The MQTT link, when `[mqtt]` is on.
    mqtt: std::sync::OnceLock<crate::net::mqtt::Mqtt>,
    /// Who the device is (set by the daemon; an embedded server has none).
    lan: std::sync::OnceLock<LanInfo>,
    /// How long a request head may take to arrive (`api.header_timeout_secs`).
    header_timeout: std::sync::OnceLock<std::time::Duration>,
}

/// What the API tells about the device and how it recognizes its own names.
#[derive(Debug, Clone, Default)]
pub struct LanInfo {
    /// The stable device id ([`crate::device`]).
    pub device_id: Option<String>,
    /// The API certificate's SHA-256 fingerprint when it serves HTTPS.
    pub cert_sha256: Option<String>,
    /// Names from `api.host_names` the host guard accepts besides the built-in ones.
    pub host_names: Vec<String>,
}

/// What every handler can reach. Cloning shares it.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

impl ApiState {
    /// `body_limit`: the largest request body in bytes (`api.body_limit_kb * 1024`).
    pub fn new(mgr: SessionManager, setup: Setup, body_limit: usize) -> ApiState {
        let (closing, _) = watch::channel(false);
        ApiState {
            inner: Arc::new(Inner {
                store: mgr.store().clone(),
                bus: mgr.bus().clone(),
                mgr,
                setup,
                body_limit,
                started: Instant::now(),
                counters: ApiCounters::default(),
                closing,
                display: std::sync::OnceLock::new(),
                webhooks: std::sync::OnceLock::new(),
                mqtt: std::sync::OnceLock::new(),
                lan: std::sync::OnceLock::new(),
                header_timeout: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Serve this display's frames at `GET /api/display.png`.
    pub fn set_display(&self, frames: crate::display::LastFrame) {
        let _ = self.inner.display.set(frames);
    }

    /// The device's id, certificate and extra names (once, before serving).
    pub fn set_lan(&self, lan: LanInfo) {
        let _ = self.inner.lan.set(lan);
    }

    /// How long a client may take to send a request head (once, before serving; default
    /// 30 s): slower connections, and keep-alive connections idle that long, are closed.
    pub fn set_header_timeout(&self, timeout: std::time::Duration) {
        let _ = self.inner.header_timeout.set(timeout);
    }

    fn header_timeout(&self) -> std::time::Duration {
        self.inner
            .header_timeout
            .get()
            .copied()
            .unwrap_or(conn::DEFAULT_HEADER_TIMEOUT)
    }

    pub fn lan(&self) -> Option<&LanInfo> {
        self.inner.lan.get()
    }

    pub(crate) fn display(&self) -> Option<&crate::display::LastFrame> {
        self.inner.display.get()
    }

    /// Use this forwarder: the webhook routes wake it, health reports its clock gate.
    pub fn set_webhooks(&self, webhooks: crate::net::webhook::Webhooks) {
        let _ = self.inner.webhooks.set(webhooks);
    }

    pub(crate) fn webhooks(&self) -> Option<&crate::net::webhook::Webhooks> {
        self.inner.webhooks.get()
    }

    /// Report this MQTT link in health, metrics and the dashboard.
    pub fn set_mqtt(&self, mqtt: crate::net::mqtt::Mqtt) {
        let _ = self.inner.mqtt.set(mqtt);
    }

    pub(crate) fn mqtt(&self) -> Option<&crate::net::mqtt::Mqtt> {
        self.inner.mqtt.get()
    }

    pub fn manager(&self) -> &SessionManager {
        &self.inner.mgr
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn setup(&self) -> &Setup {
        &self.inner.setup
    }

    pub fn started(&self) -> Instant {
        self.inner.started
    }

    pub(crate) fn counters(&self) -> &ApiCounters {
        &self.inner.counters
    }

    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// End open event streams (graceful shutdown waits for every connection).
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }
}

/// The API router, every route of [`routes`] with its access check.
pub fn router(state: ApiState) -> Router {
    let mut router: Router<ApiState> = Router::new();
    for route in all_routes() {
        let handler = match route.info.access {
            Access::Public => route.handler,
            access => route.handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), access),
                auth::require,
            )),
        };
        router = router.route(route.info.path, handler);
    }
    router
        .fallback(|| async { ApiError::route_not_found() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(state.inner.body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .layer(middleware::from_fn_with_state(state.clone(), store_guard))
        .layer(middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// 503 for every route but health (and the dashboard's files, which show the API's own
/// errors) once the store has failed.
async fn store_guard(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !state.store().is_ok()
        && path != "/api/health"
        && !crate::net::dashboard::is_dashboard_path(path)
    {
        return ApiError::store_unavailable().into_response();
    }
    next.run(req).await
}

/// Paths the DNS-rebinding guard covers: first-boot setup and the dashboard.
fn host_guarded(path: &str) -> bool {
    path == "/" || path == "/api/setup" || path.starts_with("/dashboard/")
}

/// 421 for a guarded path whose `Host` does not name this device (see the module docs).
async fn host_guard(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if !host_guarded(req.uri().path()) {
        return next.run(req).await;
    }
    // HTTP/1.1 puts the authority in Host; an absolute-form request target carries it too.
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let extra = state.lan().map(|l| l.host_names.as_slice()).unwrap_or(&[]);
    let ok = host.as_deref().is_some_and(|h| {
        crate::device::host_is_device(
            h,
            &crate::device::device_names(extra),
            &crate::device::all_addresses(),
        )
    });
    if !ok {
        tracing::info!(
            host = host.as_deref().unwrap_or("(none)"),
            path = %req.uri().path(),
            "refused: the Host header does not name this device"
        );
        return ApiError::host_not_allowed(host.as_deref()).into_response();
    }
    next.run(req).await
}

async fn count(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let class = (resp.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    state.counters().responses[class].fetch_add(1, Ordering::Relaxed);
    resp
}

/// Serve the API on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: ApiState) -> std::io::Result<()> {
    serve_with_shutdown(listener, state, std::future::pending()).await
}

/// Serve the API until `shutdown` resolves, then finish the requests in flight (event
/// streams end at once) and return.
pub async fn serve_with_shutdown(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let timeout = state.header_timeout();
    conn::serve(listener, app, timeout, shutdown, move || {
        state.close_streams()
    })
    .await
}

/// [`serve_with_shutdown`] over HTTPS with `config` (see [`tls`]).
pub async fn serve_tls_with_shutdown(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let listener = tls::TlsListener::new(listener, config)?;
    let timeout = state.header_timeout();
    conn::serve(listener, app, timeout, shutdown, move || {
        state.close_streams()
    })
    .await
}
