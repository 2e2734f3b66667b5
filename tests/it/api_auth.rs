//! The auth matrix, generated from the router's own route table: every protected route ×
//! {no key, malformed, unknown, revoked, wrong scope, wrong session} is refused with 401 or
//! 403 and a JSON error; the right key gets past the check.

use crate::common::*;
use wagate::auth::Scope;
use wagate::net::api::{Access, RouteInfo, routes};

fn url_of(srv: &Server, r: &RouteInfo, key_id: &str) -> String {
    srv.url(&r.path.replace("{sid}", "default").replace("{id}", key_id))
}

fn send(r: &RouteInfo, url: &str, auth: Option<&str>) -> Resp {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    let body =
        (r.method != "GET" && r.method != "DELETE").then(|| ("application/json", b"{}".to_vec()));
    call(r.method.as_str(), url, None, &headers, body)
}

/// A scope that is not `want` (and not admin).
fn other_scope(want: Scope) -> Scope {
    if want == Scope::SessionsRead {
        Scope::MessagesSend
    } else {
        Scope::SessionsRead
    }
}

#[test]
fn every_protected_route_refuses_bad_keys() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let admin_id = admin.split('_').nth(1).unwrap().to_string();
    let revoked = srv.key(&[Scope::Admin], None);
    let revoked_id = revoked.split('_').nth(1).unwrap();
    assert_eq!(
        delete(&srv.url(&format!("/api/keys/{revoked_id}")), Some(&admin)).status,
        204
    );
    // Well formed, never issued.
    let unknown = format!("wgk_{}_{}", "0".repeat(10), "a".repeat(40));
    let mut secret_swapped = admin.clone();
    secret_swapped.pop();
    secret_swapped.push(if admin.ends_with('0') { '1' } else { '0' });

    let table = routes();
    let protected: Vec<&RouteInfo> = table
        .iter()
        .filter(|r| r.access != Access::Public)
        .collect();
    assert!(
        protected.len() >= 15,
        "{} protected routes",
        protected.len()
    );
    let mut checked = 0;
    for r in &protected {
        let url = url_of(&srv, r, &admin_id);
        let what = format!("{} {}", r.method, r.path);
        let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
            ("no key", None, 401, "missing_key"),
            (
                "not bearer",
                Some(format!("Basic {admin}")),
                401,
                "malformed_key",
            ),
            (
                "malformed",
                Some("Bearer nope".into()),
                401,
                "malformed_key",
            ),
            (
                "truncated",
                Some(format!("Bearer {}", &admin[..20])),
                401,
                "malformed_key",
            ),
            (
                "unknown",
                Some(format!("Bearer {unknown}")),
                401,
                "invalid_key",
            ),
            (
                "wrong secret",
                Some(format!("Bearer {secret_swapped}")),
                401,
                "invalid_key",
            ),
            (
                "revoked",
                Some(format!("Bearer {revoked}")),
                401,
                "revoked_key",
            ),
        ];
        for (case, auth, status, code) in cases {
            let resp = send(r, &url, auth.as_deref());
            assert_eq!(resp.status, status, "{what} with {case}: {}", resp.text());
            assert_eq!(resp.error_code(), code, "{what} with {case}");
            if status == 401 {
                assert!(resp.header("www-authenticate").is_some(), "{what}");
            }
            checked += 1;
        }
        if let Access::Scope(scope) = r.access {
            let wrong = srv.key(&[other_scope(scope)], None);
            let resp = send(r, &url, Some(&format!("Bearer {wrong}")));
            assert_eq!(
                resp.status,
                403,
                "{what} with a wrong-scope key: {}",
                resp.text()
            );
            assert_eq!(resp.error_code(), "insufficient_scope", "{what}");
            checked += 1;
            if r.has_session() {
                let elsewhere = srv.key(&[scope], Some(&["other"]));
                let resp = send(r, &url, Some(&format!("Bearer {elsewhere}")));
                assert_eq!(
                    resp.status,
                    403,
                    "{what} with another session's key: {}",
                    resp.text()
                );
                assert_eq!(resp.error_code(), "session_forbidden", "{what}");
                // Sessions that do not exist are 403 too: nothing leaks about them.
                let ghost = url.replace("/default", "/ghost");
                let resp = send(r, &ghost, Some(&format!("Bearer {elsewhere}")));
                assert_eq!(resp.status, 403, "{what} on a missing session");
                checked += 2;
            }
        }
    }
    assert!(checked > 100, "{checked} refusals checked");

    // The right keys get past the check on every read route (writes are tested elsewhere).
    for r in protected
        .iter()
        .filter(|r| r.method == "GET" && r.path != "/api/events")
    {
        let key = match r.access {
            Access::Scope(scope) => srv.key(&[scope], None),
            _ => srv.key(&[Scope::SessionsRead], None),
        };
        let resp = send(
            r,
            &url_of(&srv, r, &admin_id),
            Some(&format!("Bearer {key}")),
        );
        assert!(
            resp.status != 401 && resp.status != 403,
            "{} {} refused the right key: {} {}",
            r.method,
            r.path,
            resp.status,
            resp.text()
        );
    }
}

#[test]
fn public_routes_need_no_key() {
    let srv = Server::start(Options::default());
    for r in routes()
        .iter()
        .filter(|r| r.access == Access::Public && r.method == "GET")
    {
        let resp = get(&srv.url(r.path), None);
        assert_eq!(resp.status, 200, "{} {}", r.method, r.path);
    }
}

#[test]
fn keys_limited_to_sessions_see_only_theirs() {
    let srv = Server::start(Options::default());
    let key = srv.key(
        &[Scope::SessionsRead, Scope::SessionsWrite],
        Some(&["other", "mine"]),
    );

    // The list leaves the others out.
    let list = get(&srv.url("/api/sessions"), Some(&key)).json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["other"]);

    // Creating: only an id the key names.
    let r = post_json(
        &srv.url("/api/sessions"),
        Some(&key),
        serde_json::json!({"id": "theirs"}),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "session_forbidden");
    let r = post_json(
        &srv.url("/api/sessions"),
        Some(&key),
        serde_json::json!({"id": "mine"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Its own session: allowed; another: 403.
    assert_eq!(get(&srv.url("/api/sessions/mine"), Some(&key)).status, 200);
    assert_eq!(
        get(&srv.url("/api/sessions/default"), Some(&key)).status,
        403
    );

    // The event stream refuses a filter naming another session.
    let r = get(&srv.url("/api/events?session=default"), Some(&key));
    assert_eq!(r.status, 403);
}
