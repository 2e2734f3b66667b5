//! The dashboard's files over real HTTP: `/` is the page, its assets are embedded and
//! served from this device alone, and together they stay inside the size budget. (The page
//! at work in a browser: tests/browser/run.sh.)

use crate::common::*;
use wagate::net::api::{Access, routes};
use wagate::net::dashboard::{ASSETS, is_dashboard_path};

/// The issue's budget is 150 KiB compressed; the files must fit it even uncompressed.
const BUDGET: usize = 150 * 1024;

#[test]
fn the_page_and_its_assets_are_served_without_a_key() {
    let srv = Server::start(Options::default());
    let page = get(&srv.url("/"), None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{}", &html[..40]);
    assert!(html.contains("<title>wagate</title>"));
    // The sign-in form is in the page itself: no data, no key needed to load it.
    assert!(html.contains(r#"<input id="key" name="key" type="password""#));

    let csp = page.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));

    for a in ASSETS {
        let r = get(&srv.url(a.path), None);
        assert_eq!(r.status, 200, "{}", a.path);
        assert_eq!(r.header("content-type"), Some(a.content_type), "{}", a.path);
        assert_eq!(r.body, a.body, "{} is served as embedded", a.path);
    }
    // Every file the page links to is one the binary serves.
    for link in html
        .split(['"', '\''])
        .filter(|s| s.starts_with("/dashboard/"))
    {
        assert!(
            is_dashboard_path(link),
            "the page links to {link}, not served"
        );
    }
    // A file that is not there is a JSON 404 like any unknown route.
    let r = get(&srv.url("/dashboard/nope.js"), None);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "route_not_found");
}

#[test]
fn assets_load_nothing_from_another_host_and_fit_the_budget() {
    let mut total = 0;
    for a in ASSETS {
        total += a.body.len();
        let text = std::str::from_utf8(a.body).expect("text assets");
        match a.path {
            // Links and sources in the page are paths on this device (or fragments).
            "/" => {
                for attr in ["src=\"", "href=\"", "action=\""] {
                    for (i, _) in text.match_indices(attr) {
                        let value = &text[i + attr.len()..];
                        assert!(
                            value.starts_with('/') && !value.starts_with("//")
                                || value.starts_with('#'),
                            "the page loads {attr}{}",
                            &value[..value.find('"').unwrap_or(value.len())]
                        );
                    }
                }
            }
            // No absolute URL in the script or the style sheet, no imports.
            "/dashboard/app.js" | "/dashboard/app.css" => {
                for bad in ["http:", "https:", "//cdn", "@import", "url(", "import("] {
                    assert!(!text.contains(bad), "{} mentions {bad}", a.path);
                }
            }
            // The SVG names its namespace, and nothing else.
            _ => assert_eq!(
                text.matches("http").count(),
                text.matches("http://www.w3.org/2000/svg").count(),
                "{}",
                a.path
            ),
        }
    }
    assert!(
        total <= BUDGET,
        "dashboard assets are {total} bytes, over {BUDGET}"
    );
}

#[test]
fn the_key_lives_in_session_storage_only() {
    let js = ASSETS
        .iter()
        .find(|a| a.path == "/dashboard/app.js")
        .map(|a| std::str::from_utf8(a.body).unwrap())
        .unwrap();
    assert!(js.contains("sessionStorage.setItem(KEY_SLOT"));
    assert!(js.contains("sessionStorage.removeItem(KEY_SLOT"));
    for never in ["localStorage", "document.cookie", "indexedDB"] {
        assert!(!js.contains(never), "app.js uses {never}");
    }
    // Every fetch omits cookies and carries the key as a bearer token.
    assert_eq!(
        js.matches("fetch(").count(),
        js.matches("credentials: 'omit'").count()
    );
}

#[test]
fn dashboard_routes_are_public_and_in_the_table() {
    let table = routes();
    for a in ASSETS {
        let r = table
            .iter()
            .find(|r| r.path == a.path)
            .unwrap_or_else(|| panic!("{} not in the route table", a.path));
        assert_eq!(r.access, Access::Public, "{}", a.path);
        assert_eq!(r.method, "GET");
    }
}
