//! The dashboard skeleton over real HTTP: the page and its assets are embedded and served
//! with a strict Content-Security-Policy, reference nothing outside the device, stay small,
//! and sit behind the host guard.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

/// The status of a GET with exactly this Host header.
fn status_with_host(srv: &Server, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(srv.base.trim_start_matches("http://")).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn page_and_assets_are_embedded_self_contained_and_locked_down() {
    let srv = Server::start(Options::default());
    let page = get(&srv.url("/"), None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains(r#"<html lang="en">"#) && html.contains("name=\"viewport\""));

    // Every asset the page names is served with its type; together they stay small.
    let mut total = html.len();
    for (path, ty) in [
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
    ] {
        assert!(html.contains(path), "the page does not load {path}");
        let r = get(&srv.url(path), None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        total += r.body.len();
        for resp in [&page, &r] {
            let csp = resp.header("content-security-policy").unwrap();
            assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
            assert!(csp.contains("form-action 'none'"), "{csp}");
            assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
        }
        // Nothing is fetched from elsewhere.
        let text = r.text();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} names an outside URL"
        );
    }
    assert!(!html.contains("http://") && !html.contains("https://"));
    // Uncompressed, so the issue's 150 KiB compressed budget holds with room to spare.
    assert!(total <= 150 * 1024, "{total} bytes");

    // The key stays in sessionStorage, never localStorage or a cookie.
    let js = get(&srv.url("/dashboard/app.js"), None).text();
    assert!(
        js.contains("sessionStorage")
            && !js.contains("localStorage")
            && !js.contains("document.cookie")
    );
}

#[test]
fn dashboard_is_behind_the_host_guard() {
    let srv = Server::start(Options::default());
    let port = srv.base.rsplit(':').next().unwrap().to_owned();
    for path in ["/", "/dashboard/app.js", "/dashboard/app.css"] {
        assert_eq!(
            status_with_host(&srv, path, "rebind.example.com"),
            421,
            "{path}"
        );
        assert_eq!(
            status_with_host(&srv, path, &format!("localhost:{port}")),
            200,
            "{path}"
        );
    }
}
