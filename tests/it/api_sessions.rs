//! Sessions over HTTP with WhatsApp unreachable: CRUD, bad input, the QR and pair-code
//! refusals, the event stream.
//!
//! The QR endpoint's happy path (a session waiting for a scan, in PNG / SVG / JSON / text)
//! needs a WhatsApp server that hands out QR refs: it is tested end to end once wa-mock is
//! ready; the renderers themselves are tested in `api_qr_render.rs`.

use crate::common::*;
use serde_json::json;
use wagate::auth::Scope;
use wagate::events::{Event, EventKind, MessageReceived, Notice};

#[test]
fn sessions_crud() {
    let srv = Server::start(Options::default());
    let key = srv.key(&[Scope::SessionsRead, Scope::SessionsWrite], None);
    let k = Some(key.as_str());

    let list = get(&srv.url("/api/sessions"), k).json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let s = &list[0];
    for field in [
        "id",
        "state",
        "reason",
        "phone",
        "lid",
        "enabled",
        "created_at",
    ] {
        assert!(s.get(field).is_some(), "missing {field}: {s}");
    }
    assert_eq!(s["id"], "default");
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["reason"], serde_json::Value::Null);

    // Create: 201, Location, starts pairing at once (connecting, then disconnected: no server).
    let r = post_json(&srv.url("/api/sessions"), k, json!({"id": "shop-2"}));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/api/sessions/shop-2"));
    assert_eq!(r.json()["enabled"], true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = get(&srv.url("/api/sessions/shop-2"), k).json();
        if s["state"] == "disconnected" {
            assert!(s["attempts"].as_u64().unwrap() >= 1);
            assert!(s["since"].as_i64().unwrap() > 0);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // Duplicate: 409.
    let r = post_json(&srv.url("/api/sessions"), k, json!({"id": "shop-2"}));
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "session_exists");

    // Stop / start / logout answer the session.
    let r = call("POST", &srv.url("/api/sessions/shop-2/stop"), k, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"], "stopped");
    assert_eq!(r.json()["enabled"], false);
    let r = call("POST", &srv.url("/api/sessions/shop-2/start"), k, &[], None);
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["state"], "stopped");
    let r = call(
        "POST",
        &srv.url("/api/sessions/shop-2/logout"),
        k,
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "stopped");

    // Delete: 204, then 404.
    assert_eq!(delete(&srv.url("/api/sessions/shop-2"), k).status, 204);
    let r = get(&srv.url("/api/sessions/shop-2"), k);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "session_not_found");
    assert_eq!(delete(&srv.url("/api/sessions/shop-2"), k).status, 404);
    for verb in ["start", "stop", "logout"] {
        let r = call(
            "POST",
            &srv.url(&format!("/api/sessions/nope/{verb}")),
            k,
            &[],
            None,
        );
        assert_eq!(r.status, 404, "{verb}");
    }
}

#[test]
fn bad_input_is_refused_with_json_errors() {
    let srv = Server::start(Options {
        body_limit: 1024,
        ..Options::default()
    });
    let key = srv.key(&[Scope::SessionsRead, Scope::SessionsWrite], None);
    let k = Some(key.as_str());
    let url = srv.url("/api/sessions");

    // Bad ids: 422.
    for id in ["Bad Id", "", "UPPER", &"a".repeat(33)] {
        let r = post_json(&url, k, json!({ "id": id }));
        assert_eq!(r.status, 422, "{id:?}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_session_id");
    }
    // Bad JSON: 400, naming the field.
    let r = post_json(&url, k, json!({"id": 5}));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_body");
    assert!(r.text().contains("id"), "{}", r.text());
    let r = post_json(&url, k, json!({}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("missing field `id`"), "{}", r.text());
    let r = post_json(&url, k, json!({"id": "x", "idd": "y"}));
    assert_eq!(r.status, 400);
    assert!(r.text().contains("idd"), "{}", r.text());
    let r = call(
        "POST",
        &url,
        k,
        &[],
        Some(("application/json", b"{\"id\": ".to_vec())),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_json");
    // Wrong or missing content type: 415.
    let r = call(
        "POST",
        &url,
        k,
        &[],
        Some(("text/plain", b"{\"id\":\"a\"}".to_vec())),
    );
    assert_eq!(r.status, 415);
    assert_eq!(r.error_code(), "unsupported_media_type");
    let r = call("POST", &url, k, &[], None);
    assert_eq!(r.status, 415);
    // Over api.body_limit_kb: 413.
    let big = json!({"id": "a".repeat(4096)}).to_string().into_bytes();
    let r = call("POST", &url, k, &[], Some(("application/json", big)));
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "body_too_large");
    // Unknown route: 404; wrong method: 405; both JSON.
    let r = get(&srv.url("/api/nothing"), k);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "route_not_found");
    let r = call("PUT", &url, k, &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET,HEAD,POST"));
    let r = call("PATCH", &srv.url("/api/health"), None, &[], None);
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "method_not_allowed");
    // Unknown query parameter: 400.
    let r = get(&srv.url("/api/sessions/default/qr?size=3"), k);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_query");
}

#[test]
fn qr_and_pair_code_refuse_sessions_not_pairing() {
    let srv = Server::start(Options::default());
    let key = srv.key(&[Scope::SessionsRead, Scope::SessionsWrite], None);
    let k = Some(key.as_str());

    for format in [
        "",
        "?format=png",
        "?format=svg",
        "?format=json",
        "?format=text",
    ] {
        let r = get(&srv.url(&format!("/api/sessions/default/qr{format}")), k);
        assert_eq!(r.status, 409, "{format}");
        assert_eq!(r.error_code(), "not_pairing");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not waiting for a scan"),
            "{}",
            r.text()
        );
    }
    let r = call(
        "GET",
        &srv.url("/api/sessions/default/qr"),
        k,
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(r.status, 409);
    let r = call(
        "GET",
        &srv.url("/api/sessions/default/qr"),
        k,
        &[("Accept", "text/html")],
        None,
    );
    assert_eq!(r.status, 406);
    assert_eq!(r.error_code(), "not_acceptable");
    let r = get(&srv.url("/api/sessions/nope/qr"), k);
    assert_eq!(r.status, 404);

    // Pair code: a bad phone is 422; a session not pairing is 409; unknown session 404.
    let url = srv.url("/api/sessions/default/pair-code");
    let r = post_json(&url, k, json!({"phone": "12ab"}));
    assert_eq!(r.status, 422);
    assert_eq!(r.error_code(), "invalid_phone");
    let r = post_json(&url, k, json!({"phone": "+44 7700 900123"}));
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "not_pairing");
    let r = post_json(&url, k, json!({"number": "447700900123"}));
    assert_eq!(r.status, 400);
    let r = post_json(
        &srv.url("/api/sessions/nope/pair-code"),
        k,
        json!({"phone": "447700900123"}),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn event_stream_shows_state_changes_filtered() {
    let srv = Server::start(Options::default());
    let admin = srv.admin();
    let reader = srv.key(&[Scope::SessionsRead], None);
    let only_other = srv.key(&[Scope::SessionsRead], Some(&["other"]));

    let mut live = Sse::open(&srv.url("/api/events?session=live&type=state"), &reader);
    let mut other = Sse::open(&srv.url("/api/events"), &only_other);

    // A new session with WhatsApp unreachable: connecting, then disconnected.
    let r = post_json(
        &srv.url("/api/sessions"),
        Some(&admin),
        json!({"id": "live"}),
    );
    assert_eq!(r.status, 201);
    let ev = live.next();
    assert_eq!(ev.event, "state");
    assert_eq!(ev.data["session"], "live");
    assert_eq!(ev.data["state"], "connecting");
    let ev = live.until("disconnected", |e| e.data["state"] != "connecting");
    assert_eq!(ev.event, "state");
    assert_eq!(ev.data["state"], "disconnected", "{:?}", ev.data);
    assert!(ev.data["attempts"].as_u64().unwrap() >= 1);

    // The key limited to `other` saw nothing of `live`: its first event is about `other`.
    let r = call(
        "POST",
        &srv.url("/api/sessions/other/start"),
        Some(&admin),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    let ev = other.next();
    assert_eq!(ev.data["session"], "other", "{ev:?}");

    // Bad filters.
    let r = get(&srv.url("/api/events?type=nonsense"), Some(&reader));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_query");
}

#[test]
fn a_lagging_reader_gets_resync() {
    let srv = Server::start(Options::default());
    let reader = srv.key(&[Scope::SessionsRead], None);
    let mut sse = Sse::open(&srv.url("/api/events?type=message.received"), &reader);
    // Flood the bus far past its capacity while the client reads nothing: the socket fills,
    // the server's reader falls behind the bus.
    let text = "x".repeat(2048);
    let bus = srv.state.bus().clone();
    srv.block_on(async move {
        for i in 0..20_000 {
            bus.publish(Notice::Event(Event::new(
                "default",
                EventKind::MessageReceived(Box::new(MessageReceived {
                    id: format!("msg_{i}"),
                    wa_id: format!("W{i}"),
                    chat: "1@s.whatsapp.net".into(),
                    from: "1@s.whatsapp.net".into(),
                    from_phone: None,
                    from_lid: None,
                    push_name: None,
                    sent_at: 0,
                    text: Some(text.clone()),
                    group: None,
                    reply_to: None,
                    mentions: Vec::new(),
                    content: Default::default(),
                })),
            )));
            if i % 1000 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let ev = sse.until("resync", |e| e.event == "resync");
    assert!(ev.data["missed"].as_u64().unwrap() > 0);
}
