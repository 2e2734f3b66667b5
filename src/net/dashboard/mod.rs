//! The dashboard: one HTML page at `/` and its assets under `/dashboard/`, embedded in the
//! binary (hand-written HTML, CSS and plain JavaScript; nothing fetched at run time, no
//! third-party host).
//!
//! The page holds no data: it asks for an API key, keeps it in the tab's `sessionStorage`
//! and sends it with every API call it makes, so its routes are [`Access::Public`] like
//! health. Every path it serves is listed in [`ASSETS`]; [`is_dashboard_path`] names them
//! for layers that treat the dashboard apart (the DNS-rebinding guard).
//!
//! Answers carry a Content-Security-Policy that allows only this origin (scripts, styles,
//! API calls) and `blob:` images (the QR code, fetched with the key), and forbids framing.

use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::api::{Access, Route};

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    summary: &'static str,
}

/// Every file the dashboard serves.
pub const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("index.html"),
        summary: "The dashboard (HTML; sign in with an API key)",
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("app.js"),
        summary: "The dashboard's script",
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("app.css"),
        summary: "The dashboard's style sheet",
    },
    Asset {
        path: "/dashboard/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("icon.svg"),
        summary: "The dashboard's icon",
    },
];

/// The dashboard's own policy: this origin only; the QR image comes as a `blob:` URL.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Whether `path` is one the dashboard serves.
pub fn is_dashboard_path(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// The dashboard's routes, for the API's route table.
pub(crate) fn routes() -> Vec<Route> {
    ASSETS
        .iter()
        .map(|a| {
            let asset = *a;
            Route::new(
                Method::GET,
                a.path,
                Access::Public,
                a.summary,
                get(move || async move { serve(asset) }),
            )
        })
        .collect()
}

fn serve(asset: Asset) -> Response {
    let mut resp = asset.body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Small files from the binary: revalidate each load so an upgrade shows at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
