//! Sessions over HTTP with WhatsApp unreachable: CRUD, bad input, the QR and pair-code
//! refusals, the event stream.
//!
//! The QR endpoint's happy path (a session waiting for a scan, in PNG / SVG / JSON / text)
//! needs a WhatsApp server that hands out QR refs: it is tested end to end once wa-mock is
//! ready; the renderers themselves are tested in `api_qr_render.rs`.

use crate::common::*;
use serde_json::json;
use std::time::Duration;
use wagate::auth::Scope;
use wagate::events::{Event, EventKind, MessageReceived, Notice};
use wagate::store::outbox;

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

/// A `message.received` as the inbound path writes it: its id from the message (so it does
/// not sort in write order when `sent_at` is older than what came before).
fn inbound(session: &str, n: usize, sent_at: i64) -> Event {
    let wa_id = format!("W{n}");
    let ulid = outbox::inbound_ulid(
        session,
        "1@s.whatsapp.net",
        "1@s.whatsapp.net",
        &wa_id,
        sent_at,
    );
    let mut ev = Event::new(
        session,
        EventKind::MessageReceived(Box::new(MessageReceived {
            id: format!("msg_{ulid}"),
            wa_id,
            chat: "1@s.whatsapp.net".into(),
            from: "1@s.whatsapp.net".into(),
            from_phone: None,
            from_lid: None,
            push_name: None,
            sent_at,
            text: Some(format!("text {n}")),
            group: None,
            reply_to: None,
            mentions: Vec::new(),
            content: Default::default(),
        })),
    );
    ev.id = format!("evt_{ulid}");
    ev.timestamp = sent_at;
    ev
}

/// Write events to the outbox in one transaction and announce them, as the engine does.
fn record_all(srv: &Server, events: Vec<Event>) -> Vec<Event> {
    let written = srv
        .state
        .store()
        .write_blocking(|t| {
            let mut out = Vec::new();
            for ev in &events {
                out.extend(outbox::record(t, ev.clone())?);
            }
            Ok(out)
        })
        .unwrap();
    for ev in &written {
        srv.state.bus().publish(Notice::Event(ev.clone()));
    }
    written
}

fn text_of(ev: &SseEvent) -> String {
    ev.data["data"]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_reconnecting_reader_gets_every_missed_event_once_in_order() {
    let srv = Server::start(Options::default());
    let reader = srv.key(&[Scope::SessionsRead], None);
    let mut sse = Sse::open(&srv.url("/api/events?type=message.received"), &reader);
    record_all(&srv, vec![inbound("a", 0, 1_700_000_000_000)]);
    let first = sse.next();
    assert_eq!(text_of(&first), "text 0");
    let last_id = first.id.clone().expect("a domain event carries its id");
    assert_eq!(Some(last_id.as_str()), first.data["id"].as_str());
    drop(sse);

    // 100 events while nobody listens, over two sessions, written one by one; every other
    // one stamped an hour earlier than the first, so ids do not sort in write order.
    let mut written = Vec::new();
    for n in 1..=100 {
        let at = if n % 2 == 0 {
            1_699_996_400_000
        } else {
            1_700_000_000_000 + n as i64
        };
        let session = if n % 3 == 0 { "b" } else { "a" };
        written.extend(record_all(&srv, vec![inbound(session, n, at)]));
    }
    assert_eq!(written.len(), 100);

    let mut again = Sse::open_with(
        &srv.url("/api/events?type=message.received"),
        &reader,
        Duration::from_secs(40),
        &[("Last-Event-ID", &last_id)],
    );
    for (n, ev) in written.iter().enumerate() {
        let got = again.next();
        assert_eq!(
            got.id.as_deref(),
            Some(ev.id.as_str()),
            "event {} of 100",
            n + 1
        );
        assert_eq!(text_of(&got), format!("text {}", n + 1));
    }
    // Then the live stream, without repeating any of them.
    record_all(&srv, vec![inbound("a", 101, 1_700_000_001_000)]);
    assert_eq!(text_of(&again.next()), "text 101");

    // `?after=` does the same, through the filters: only session b's, in order.
    let mut b_only = Sse::open(
        &srv.url(&format!("/api/events?session=b&after={last_id}")),
        &reader,
    );
    for ev in written.iter().filter(|e| e.session == "b") {
        assert_eq!(b_only.next().id.as_deref(), Some(ev.id.as_str()));
    }
    record_all(&srv, vec![inbound("b", 102, 1_700_000_002_000)]);
    assert_eq!(text_of(&b_only.next()), "text 102");

    // An id the log never had: 410, with what to do.
    let r = get(&srv.url("/api/events?after=evt_nothing"), Some(&reader));
    assert_eq!(r.status, 410);
    assert_eq!(r.error_code(), "event_gone");
    assert!(r.text().contains("resync"), "{}", r.text());
    let r = get(
        &srv.url(&format!("/api/events?after={}", "x".repeat(65))),
        Some(&reader),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn catch_up_after_pruned_events_answers_410() {
    let srv = Server::start(Options::default());
    let reader = srv.key(&[Scope::SessionsRead], None);
    let base = 1_700_000_000_000;
    let written = record_all(
        &srv,
        (0..10).map(|n| inbound("a", n, base + n as i64)).collect(),
    );
    let prune = |max_events: u64, older_than: i64| {
        srv.state
            .store()
            .write_blocking(|t| {
                outbox::prune(
                    t,
                    outbox::Bounds {
                        older_than,
                        max_deliveries: u64::MAX,
                        max_events,
                        max_bytes: u64::MAX,
                    },
                )
            })
            .unwrap()
    };
    // The retention keeps the newest 5.
    assert_eq!(prune(5, 0).1, 5);
    let url = |id: &str| srv.url(&format!("/api/events?after={id}"));
    let r = get(&url(&written[3].id), Some(&reader));
    assert_eq!(r.status, 410, "a pruned event: {}", r.text());
    assert_eq!(r.error_code(), "event_gone");
    let mut sse = Sse::open(&url(&written[6].id), &reader);
    assert_eq!(text_of(&sse.next()), "text 7");
    assert_eq!(text_of(&sse.next()), "text 8");
    assert_eq!(text_of(&sse.next()), "text 9");
    drop(sse);

    // An event written later but stamped long ago goes first by age: a client whose last
    // event was written before it would miss it, so it is told to resync.
    record_all(&srv, vec![inbound("a", 10, base - 86_400_000)]);
    assert_eq!(prune(u64::MAX, base - 1).1, 1);
    let r = get(&url(&written[9].id), Some(&reader));
    assert_eq!(r.status, 410, "an event after it was pruned: {}", r.text());
}

#[test]
fn a_lagging_reader_loses_no_logged_event() {
    let srv = Server::start(Options::default());
    let reader = srv.key(&[Scope::SessionsRead], None);
    let mut sse = Sse::open(&srv.url("/api/events?type=message.received"), &reader);
    // 3,000 events with 1 KiB texts, announced far past the bus's capacity while the client
    // reads nothing.
    let pad = "y".repeat(1024);
    let events = (0..3000)
        .map(|n| {
            let mut ev = inbound("a", n, 1_700_000_000_000 + n as i64);
            if let EventKind::MessageReceived(m) = &mut ev.kind {
                m.push_name = Some(pad.clone());
            }
            ev
        })
        .collect();
    let written = record_all(&srv, events);
    let mut resync = 0;
    let mut n = 0;
    while n < written.len() {
        let ev = sse.next();
        if ev.event == "resync" {
            resync += 1;
            continue;
        }
        assert_eq!(ev.id.as_deref(), Some(written[n].id.as_str()), "event {n}");
        n += 1;
    }
    // The next logged event comes once, after any `resync` not yet read: none of the 3,000
    // again.
    record_all(&srv, vec![inbound("a", 3000, 1_700_000_100_000)]);
    let next = sse.until("the next event", |e| {
        resync += usize::from(e.event == "resync");
        e.event != "resync"
    });
    assert_eq!(text_of(&next), "text 3000");
    assert!(resync >= 1, "the reader fell behind the bus and was told");
}
