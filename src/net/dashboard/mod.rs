//! The dashboard at `/`: a small page embedded in the binary (no build step, nothing fetched
//! from elsewhere at run time) that drives the HTTP API from the browser.
//!
//! This is a skeleton: signing in with an API key (kept in `sessionStorage` only, sent as the
//! `Authorization` header), the sessions with their live states (`/api/events` read through
//! `fetch`, as `EventSource` cannot send the key), creating a session, linking it by QR with
//! a countdown or by phone code, and sending a test text with its status. Webhook pages, the
//! delivery log and the queue view come with the webhooks.
//!
//! The page and its assets are public (they hold no data; everything after sign-in goes
//! through keyed API calls) and sit behind the host guard (see [`crate::net::api`]). Every
//! answer carries a strict Content-Security-Policy: scripts, styles, images and requests from
//! this origin only (plus `blob:` images for the QR), no forms submitted by the browser (so a
//! key typed before the script runs never lands in a URL), no framing.

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::net::api::{Access, Route};

/// The page.
pub const INDEX_HTML: &str = include_str!("index.html");
/// Its script.
pub const APP_JS: &str = include_str!("app.js");
/// Its style sheet.
pub const APP_CSS: &str = include_str!("app.css");

/// The Content-Security-Policy of every dashboard answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' blob:; connect-src 'self'; form-action 'none'; \
                       base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/",
            Access::Public,
            "The dashboard (HTML); sign in with an API key",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        ),
        Route::new(
            Method::GET,
            "/dashboard/app.js",
            Access::Public,
            "The dashboard's script",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        ),
        Route::new(
            Method::GET,
            "/dashboard/app.css",
            Access::Public,
            "The dashboard's style sheet",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        ),
    ]
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small and part of the binary: revalidate so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
