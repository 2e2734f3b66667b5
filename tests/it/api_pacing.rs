//! Pacing over HTTP: per-session settings (validated, the field named), the duplicate guard
//! (hold, release, reject), and the queue answer. WhatsApp is unreachable here: messages stay
//! queued, which is what these checks need.

use crate::common::*;
use serde_json::{Value, json};

fn put_json(url: &str, key: &str, body: Value) -> Resp {
    call(
        "PUT",
        url,
        Some(key),
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    )
}

fn send_text(srv: &Server, key: &str, to: &str, text: &str) -> Resp {
    post_json(
        &srv.url("/api/sessions/default/messages/text"),
        Some(key),
        json!({"to": to, "text": text}),
    )
}

#[test]
fn settings_follow_the_defaults_until_overridden_and_are_validated() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let url = srv.url("/api/sessions/default/settings");

    let s = get(&url, Some(&key)).json();
    assert_eq!(s["settings"], s["defaults"]);
    assert_eq!(s["overrides"], json!({}));
    assert_eq!(s["paired_at"], Value::Null);
    assert_eq!(s["warm_up"]["active"], false);
    assert_eq!(s["settings"]["duplicate_action"], "hold");

    // Refusals name the field; nothing is saved.
    for (body, status, field) in [
        (
            json!({"min_delay_ms": 10, "max_delay_ms": 5}),
            422,
            "min_delay_ms",
        ),
        (json!({"per_hour": 0}), 422, "per_hour"),
        (json!({"warmup": [5, 0]}), 422, "warmup"),
        (json!({"duplicate_window_s": 0}), 422, "duplicate_window_s"),
        (json!({"min_delay": 10}), 400, "min_delay"),
        (json!({"per_day": -1}), 400, "per_day"),
        (json!({"duplicate_action": "drop"}), 400, "duplicate_action"),
    ] {
        let r = put_json(&url, &key, body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let e = r.json();
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(field), "{body}: {msg}");
        if status == 422 {
            assert_eq!(r.error_code(), "invalid_setting");
        }
    }
    // A max below the platform's min: the merged settings are what is checked.
    let r = put_json(&url, &key, json!({"max_delay_ms": 1}));
    assert_eq!(r.status, 422);
    assert!(r.text().contains("min_delay_ms"), "{}", r.text());
    assert_eq!(get(&url, Some(&key)).json()["overrides"], json!({}));

    let r = put_json(
        &url,
        &key,
        json!({"min_delay_ms": 100, "max_delay_ms": 200, "warmup": [], "typing": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let s = get(&url, Some(&key)).json();
    assert_eq!(s["settings"]["min_delay_ms"], 100);
    assert_eq!(s["settings"]["max_delay_ms"], 200);
    assert_eq!(s["settings"]["typing"], false);
    assert_eq!(s["settings"]["warmup"], json!([]));
    assert_eq!(s["settings"]["per_day"], s["defaults"]["per_day"]);
    assert_eq!(
        s["overrides"],
        json!({"min_delay_ms": 100, "max_delay_ms": 200, "warmup": [], "typing": false})
    );
    // The other session keeps the defaults.
    let other = get(&srv.url("/api/sessions/other/settings"), Some(&key)).json();
    assert_eq!(other["settings"], other["defaults"]);
    // `{}` goes back to the defaults; null fields follow them too.
    assert_eq!(put_json(&url, &key, json!({"typing": null})).status, 200);
    assert_eq!(get(&url, Some(&key)).json()["overrides"], json!({}));

    let r = get(&srv.url("/api/sessions/ghost/settings"), Some(&key));
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "session_not_found");
    let r = call(
        "PUT",
        &url,
        Some(&key),
        &[],
        Some(("text/plain", b"{}".to_vec())),
    );
    assert_eq!(r.status, 415);
}

#[test]
fn the_duplicate_guard_holds_then_releases_and_the_queue_shows_it() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let settings = srv.url("/api/sessions/default/settings");
    assert_eq!(
        put_json(&settings, &key, json!({"duplicate_recipients": 2})).status,
        200
    );
    let body = "Big sale today only!";
    let a = send_text(&srv, &key, "+44 7700 900001", body);
    let b = send_text(&srv, &key, "+44 7700 900002", body);
    assert_eq!((a.status, b.status), (202, 202));
    assert_eq!(a.json()["status"], "queued");
    // A third distinct recipient within the window: accepted, held.
    let c = send_text(&srv, &key, "+44 7700 900003", body);
    assert_eq!(c.status, 202, "{}", c.text());
    assert_eq!(c.json()["status"], "held");
    let held_id = c.json()["id"].as_str().unwrap().to_string();
    // Someone who already had it may get it again; other content is not affected.
    let again = send_text(&srv, &key, "+44 7700 900001", body);
    assert_eq!(again.json()["status"], "queued");
    let other = send_text(&srv, &key, "+44 7700 900003", "Something else");
    assert_eq!(other.json()["status"], "queued");

    let msg = get(
        &srv.url(&format!("/api/sessions/default/messages/{held_id}")),
        Some(&key),
    )
    .json();
    assert_eq!(msg["status"], "held");
    assert!(msg["reason"].as_str().unwrap().contains("duplicate"));

    let q = get(&srv.url("/api/sessions/default/queue"), Some(&key)).json();
    assert_eq!(q["depth"], 5);
    assert_eq!(q["held_count"], 1);
    assert_eq!(q["held"][0]["id"], held_id.as_str());
    // Not started: nothing goes, and the answer says why.
    assert_eq!(q["paused"]["reason"], "stopped");
    assert_eq!(q["next_send_at"], Value::Null);
    assert_eq!(q["sent"]["last_day"], 0);

    // Release: queued again, in its place. Releasing what is not held is a conflict.
    let release = |id: &str| {
        post_json(
            &srv.url(&format!("/api/sessions/default/messages/{id}/release")),
            Some(&key),
            json!({}),
        )
    };
    let r = release(&held_id);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "queued");
    let r = release(&held_id);
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "not_held");
    let r = release("msg_nope");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "message_not_found");
    let q = get(&srv.url("/api/sessions/default/queue"), Some(&key)).json();
    assert_eq!(
        (q["depth"].as_u64(), q["held_count"].as_u64()),
        (Some(5), Some(0))
    );

    // A held message can be cancelled.
    let d = send_text(&srv, &key, "+44 7700 900004", body);
    assert_eq!(d.json()["status"], "held");
    let d_id = d.json()["id"].as_str().unwrap().to_string();
    let r = delete(
        &srv.url(&format!("/api/sessions/default/messages/{d_id}")),
        Some(&key),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "cancelled");

    // Reject mode: a clear 409, nothing queued.
    assert_eq!(
        put_json(
            &settings,
            &key,
            json!({"duplicate_recipients": 2, "duplicate_action": "reject"})
        )
        .status,
        200
    );
    let r = send_text(&srv, &key, "+44 7700 900005", body);
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "duplicate_content");
    assert!(r.text().contains("2 other recipients"), "{}", r.text());
    let q = get(&srv.url("/api/sessions/default/queue"), Some(&key)).json();
    assert_eq!(q["depth"], 5);
    // Off: anything goes.
    assert_eq!(
        put_json(&settings, &key, json!({"duplicate_action": "off"})).status,
        200
    );
    assert_eq!(
        send_text(&srv, &key, "+44 7700 900006", body).json()["status"],
        "queued"
    );
}

#[test]
fn a_session_that_is_not_connected_reports_it() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    assert_eq!(send_text(&srv, &key, "+44 7700 900001", "hi").status, 202);
    // Started against an unreachable WhatsApp: connecting or disconnected, never sending.
    let r = post_json(
        &srv.url("/api/sessions/default/start"),
        Some(&key),
        json!({}),
    );
    assert_eq!(r.status, 200);
    let q = get(&srv.url("/api/sessions/default/queue"), Some(&key)).json();
    assert_eq!(q["paused"]["reason"], "not_connected", "{q}");
    assert_eq!(q["depth"], 1);
    assert_eq!(q["next_send_at"], Value::Null);
    let r = get(&srv.url("/api/sessions/ghost/queue"), Some(&key));
    assert_eq!(r.status, 404);
}
