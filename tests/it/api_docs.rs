//! Health, the OpenAPI document and the Prometheus metrics.

use std::collections::BTreeMap;

use crate::common::*;
use serde_json::Value;
use wagate::auth::Scope;
use wagate::net::api::{Access, routes};

#[test]
fn health_answers_without_a_key() {
    let srv = Server::start(Options::default());
    let r = get(&srv.url("/api/health"), None);
    assert_eq!(r.status, 200);
    let h = r.json();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert!(h["uptime_s"].as_u64().is_some());
    assert_eq!(h["sessions"]["stopped"], 2);
    assert_eq!(h["sessions"]["connected"], 0);
    assert_eq!(h["store_ok"], true);
    assert_eq!(h["setup_pending"], false);
    // On Linux the kernel answers; elsewhere null.
    assert!(h["clock_synced"].is_boolean() || h["clock_synced"].is_null());
}

/// Every `$ref` in `v` points at an existing schema.
fn check_refs(v: &Value, doc: &Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let name = r
                    .strip_prefix("#/components/schemas/")
                    .unwrap_or_else(|| panic!("odd $ref {r}"));
                assert!(
                    doc["components"]["schemas"].get(name).is_some(),
                    "dangling $ref {r}"
                );
            }
            map.values().for_each(|x| check_refs(x, doc));
        }
        Value::Array(a) => a.iter().for_each(|x| check_refs(x, doc)),
        _ => {}
    }
}

#[test]
fn openapi_document_lists_every_route() {
    let srv = Server::start(Options::default());
    let key = srv.key(&[Scope::MessagesSend], None);
    // Any valid key may read it; none may not.
    assert_eq!(get(&srv.url("/api/openapi.json"), None).status, 401);
    let r = get(&srv.url("/api/openapi.json"), Some(&key));
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();

    let table = routes();
    for route in &table {
        let op = &paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} missing from the document", route.path))
            [route.method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} missing", route.method, route.path);
        assert!(op["operationId"].is_string());
        assert!(op["summary"].is_string());
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{} {} has no success response",
            route.method,
            route.path
        );
        match route.access {
            Access::Public => assert_eq!(op["security"], serde_json::json!([])),
            _ => assert!(
                responses.contains_key("401"),
                "{} {}",
                route.method,
                route.path
            ),
        }
        if let Access::Scope(s) = route.access {
            assert_eq!(op["x-wagate-scope"], s.as_str());
        }
        // Path parameters are declared.
        for seg in route.path.split('/').filter(|s| s.starts_with('{')) {
            let name = seg.trim_matches(['{', '}']);
            assert!(
                op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path")),
                "{} {}: parameter {name} undeclared",
                route.method,
                route.path
            );
        }
    }
    // And nothing in the document that the router does not serve.
    let mut served: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in &table {
        served
            .entry(r.path)
            .or_default()
            .push(r.method.as_str().to_ascii_lowercase());
    }
    for (path, item) in paths {
        let methods = served
            .get(path.as_str())
            .unwrap_or_else(|| panic!("{path} is documented but not routed"));
        for m in item.as_object().unwrap().keys() {
            assert!(
                methods.contains(m),
                "{m} {path} is documented but not routed"
            );
        }
    }
    check_refs(&doc, &doc);
    for name in ["Error", "Session", "CreatedKey", "Health", "KeyCreate"] {
        assert!(doc["components"]["schemas"].get(name).is_some(), "{name}");
    }
}

/// A query string the API refuses (400 `invalid_query`) is an answer the document lists, for
/// every operation that takes query parameters (schemathesis found two that did not).
#[test]
fn refused_query_strings_are_documented() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let doc = get(&srv.url("/api/openapi.json"), Some(&key)).json();
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            if query {
                assert!(
                    op["responses"].get("400").is_some(),
                    "{method} {path} takes a query string but does not document 400"
                );
            }
        }
    }
    for (path, method) in [
        ("/api/events?bogus=1", "get"),
        ("/api/sessions/default/qr?format=null", "get"),
        ("/api/deliveries?limit=x", "get"),
    ] {
        let r = get(&srv.url(path), Some(&key));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "invalid_query", "{path}");
        let template = path
            .split('?')
            .next()
            .unwrap()
            .replace("/default/", "/{sid}/");
        assert!(
            doc["paths"][&template][method]["responses"]
                .get("400")
                .is_some(),
            "{method} {template}: 400 undocumented"
        );
    }
}

/// The pacing settings answer has exactly the fields the document's schemas list, overrides
/// included (schemathesis found `auto_read` missing from `PacingSettings`).
#[test]
fn settings_answer_matches_the_documented_schemas() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let doc = get(&srv.url("/api/openapi.json"), Some(&key)).json();
    let body = serde_json::json!({"auto_read": true, "per_day": 50});
    let r = call(
        "PUT",
        &srv.url("/api/sessions/default/settings"),
        Some(&key),
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let props = |schema: &str| -> Vec<String> {
        let mut p: Vec<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        p.sort();
        p
    };
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&v["settings"]), props("PacingSettings"));
    assert_eq!(keys(&v["defaults"]), props("PacingSettings"));
    assert_eq!(v["settings"]["auto_read"], true);
    for k in keys(&v["overrides"]) {
        assert!(
            props("PacingOverrides").contains(&k),
            "override {k} undocumented"
        );
    }
}

/// A minimal reader of the Prometheus text format: (name, labels, value) per sample; panics
/// on a line that is not a comment, blank or a well-formed sample.
fn parse_prometheus(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "{line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap();
                assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&t));
                typed.insert(name.to_string());
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                let labels = body
                    .split(',')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        let v = v
                            .strip_prefix('"')
                            .and_then(|v| v.strip_suffix('"'))
                            .unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (name.to_string(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        assert!(typed.contains(&name), "{name} has no TYPE line before it");
        out.push((name, labels, value));
    }
    out
}

#[test]
fn metrics_are_prometheus_text() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let reader = srv.key(&[Scope::SessionsRead], None);
    assert_eq!(get(&srv.url("/metrics"), Some(&reader)).status, 403);
    let r = get(&srv.url("/metrics"), Some(&admin));
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let samples = parse_prometheus(&r.text());
    let find = |name: &str, label: Option<(&str, &str)>| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name && label.is_none_or(|(k, v)| l.get(k).map(String::as_str) == Some(v))
            })
            .map(|s| s.2)
    };
    assert_eq!(
        find("wagate_sessions", Some(("state", "stopped"))),
        Some(2.0)
    );
    assert_eq!(
        find("wagate_sessions", Some(("state", "connected"))),
        Some(0.0)
    );
    assert_eq!(find("wagate_store_ok", None), Some(1.0));
    assert_eq!(
        find("wagate_session_up", Some(("session", "default"))),
        Some(0.0)
    );
    assert_eq!(find("wagate_setup_pending", None), Some(0.0));
    // The 403 above was counted.
    assert!(find("wagate_http_responses_total", Some(("code", "4xx"))).unwrap() >= 1.0);
    assert!(
        find(
            "wagate_build_info",
            Some(("version", env!("CARGO_PKG_VERSION")))
        )
        .is_some()
    );
}

/// A percent-encoded path segment that is not UTF-8 is a documented 400 in the API's error
/// shape, not axum's plain-text rejection (found by bench/malformed_http.py).
#[test]
fn a_path_parameter_that_is_not_utf8_is_a_json_400() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let doc = get(&srv.url("/api/openapi.json"), Some(&key)).json();
    for (path, template) in [
        ("/api/sessions/%ff%fe", "/api/sessions/{sid}"),
        (
            "/api/sessions/default/messages/%c3%28",
            "/api/sessions/{sid}/messages/{id}",
        ),
        ("/api/webhooks/%80", "/api/webhooks/{id}"),
        ("/api/keys/%ff", "/api/keys/{id}"),
    ] {
        let r = get(&srv.url(path), Some(&key));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", r.text()));
        assert_eq!(v["error"]["code"], "invalid_path", "{path}");
        assert!(v["error"]["message"].is_string());
        assert!(
            doc["paths"][template]["get"]["responses"]
                .get("400")
                .is_some(),
            "GET {template}: 400 undocumented"
        );
    }
}
