//! Webhooks over real sockets: endpoints managed through the API, deliveries posted by the
//! forwarder to a local receiver, signatures checked by an independent verifier (the
//! `standardwebhooks` crate) and by one written from the contract, retries driven by the
//! forwarder's clock (moved forward instead of waited for).

use crate::common;

use std::time::Duration;

use crate::common::receiver::{Receiver, Reply, verify_standard, verify_wagate};
use crate::common::{Options, Server, call, delete, get, post_json};
use serde_json::{Value, json};
use wagate::events::{Event, EventKind};
use wagate::net::webhook::Settings;
use wagate::store::outbox;

const WAIT: Duration = Duration::from_secs(20);

fn server(settings: Settings) -> Server {
    Server::start(Options {
        webhooks: settings,
        ..Options::default()
    })
}

fn patch(url: &str, key: &str, body: Value) -> common::Resp {
    call(
        "PATCH",
        url,
        Some(key),
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    )
}

/// Create an endpoint; returns (id, secret).
fn endpoint(srv: &Server, key: &str, body: Value) -> (String, String) {
    let r = post_json(&srv.url("/api/webhooks"), Some(key), body);
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

fn delivery(srv: &Server, key: &str, id: &str) -> Value {
    let r = get(&srv.url(&format!("/api/deliveries/{id}")), Some(key));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn wait_delivery(
    srv: &Server,
    key: &str,
    id: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let d = delivery(srv, key, id);
        if f(&d) {
            return d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {d}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn test_event(srv: &Server, key: &str, ep: &str) -> (String, String) {
    let r = post_json(
        &srv.url(&format!("/api/webhooks/{ep}/test")),
        Some(key),
        json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    (
        v["event_id"].as_str().unwrap().to_string(),
        v["delivery_id"].as_str().unwrap().to_string(),
    )
}

#[test]
fn endpoints_are_managed_and_the_secret_is_shown_once() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let k = Some(key.as_str());
    let (id, secret) = endpoint(
        &srv,
        &key,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["message.received"], "description": "crm"}),
    );
    assert!(id.starts_with("whk_"));
    assert!(secret.starts_with("whsec_"));
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&secret["whsec_".len()..])
        .unwrap();
    assert_eq!(raw.len(), 32);

    let shown = get(&srv.url(&format!("/api/webhooks/{id}")), k).json();
    assert!(shown.get("secret").is_none(), "never shown again: {shown}");
    assert_eq!(shown["events"], json!(["message.received"]));
    assert_eq!(shown["enabled"], true);
    let listed = get(&srv.url("/api/webhooks"), k).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret));

    // Refusals name the field.
    let bad = [
        (json!({"url": "ftp://x/hook"}), 422, "invalid_url"),
        (json!({"url": "http:///nohost"}), 422, "invalid_url"),
        (json!({"url": "not a url"}), 422, "invalid_url"),
        (
            json!({"url": "http://h/", "events": []}),
            422,
            "invalid_events",
        ),
        (
            json!({"url": "http://h/", "events": ["message.recieved"]}),
            422,
            "invalid_events",
        ),
        (
            json!({"url": "http://h/", "sessions": ["Bad Id"]}),
            422,
            "invalid_sessions",
        ),
        (
            json!({"url": "http://h/", "sessions": []}),
            422,
            "invalid_sessions",
        ),
        (
            json!({"url": "http://h/", "colour": "red"}),
            400,
            "invalid_body",
        ),
        (json!({"events": ["*"]}), 400, "invalid_body"),
    ];
    for (body, status, code) in bad {
        let r = post_json(&srv.url("/api/webhooks"), k, body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert_eq!(r.error_code(), code, "{body}");
    }
    assert_eq!(
        get(&srv.url("/api/webhooks"), k)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // PATCH: change some fields, clear the session filter with null, keep the rest.
    let r = patch(
        &srv.url(&format!("/api/webhooks/{id}")),
        &key,
        json!({"events": ["*"], "sessions": ["default"], "enabled": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sessions"], json!(["default"]));
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(r.json()["description"], "crm");
    let r = patch(
        &srv.url(&format!("/api/webhooks/{id}")),
        &key,
        json!({"sessions": null}),
    );
    assert_eq!(r.json()["sessions"], Value::Null);
    assert_eq!(r.json()["events"], json!(["*"]));
    let r = patch(
        &srv.url(&format!("/api/webhooks/{id}")),
        &key,
        json!({"url": "gopher://x"}),
    );
    assert_eq!(r.status, 422);
    assert_eq!(
        patch(
            &srv.url("/api/webhooks/whk_nope"),
            &key,
            json!({"enabled": true})
        )
        .status,
        404
    );

    // Only webhooks:manage (or admin) may touch them.
    let sender = srv.key(&[wagate::auth::Scope::MessagesSend], None);
    assert_eq!(get(&srv.url("/api/webhooks"), Some(&sender)).status, 403);

    assert_eq!(
        delete(&srv.url(&format!("/api/webhooks/{id}")), k).status,
        204
    );
    let r = get(&srv.url(&format!("/api/webhooks/{id}")), k);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "webhook_not_found");
}

#[test]
fn a_test_event_arrives_signed_and_verifies_independently() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let rx = Receiver::start();
    let (ep, secret) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let (event_id, dlv) = test_event(&srv, &key, &ep);
    let hits = rx.wait_for("the test event", WAIT, |h| !h.is_empty());
    let hit = &hits[0];

    assert_eq!(hit.header("content-type"), "application/json");
    assert_eq!(hit.header("x-wagate-event"), "webhook.test");
    assert_eq!(hit.header("x-wagate-delivery-id"), dlv);
    assert_eq!(hit.header("webhook-id"), dlv);
    assert_eq!(
        hit.header("webhook-timestamp"),
        hit.header("x-wagate-timestamp")
    );
    let body = hit.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["data"]["endpoint"], ep.as_str());
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, ["data", "id", "seq", "session", "timestamp", "type"]);

    verify_wagate(&secret, hit, "x-wagate-signature").unwrap();
    verify_standard(&secret, hit).unwrap();

    // The verifiers do refuse: another secret, a changed body.
    let other = wagate::net::webhook::new_secret();
    assert!(verify_wagate(&other, hit, "x-wagate-signature").is_err());
    assert!(verify_standard(&other, hit).is_err());
    let mut tampered = hit.clone();
    tampered.body = hit
        .body
        .iter()
        .map(|b| if *b == b'1' { b'2' } else { *b })
        .collect();
    assert_ne!(tampered.body, hit.body);
    assert!(verify_wagate(&secret, &tampered, "x-wagate-signature").is_err());
    assert!(verify_standard(&secret, &tampered).is_err());

    let d = wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["response"], "answer 200");
    assert!(d["attempts"][0]["latency_ms"].as_u64().is_some(), "{d}");
    assert!(d["attempts"][0]["at"].as_i64().is_some(), "{d}");
    assert_eq!(d["event_id"], event_id.as_str());

    // A long answer is kept to its first KiB, a slow one shows its latency.
    rx.script([Reply {
        body: "z".repeat(3000),
        delay: Duration::from_millis(300),
        ..Reply::status(200)
    }]);
    let (_, dlv) = test_event(&srv, &key, &ep);
    let d = wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    assert_eq!(d["attempts"][0]["response"], "z".repeat(1024));
    assert!(
        d["attempts"][0]["latency_ms"].as_u64().unwrap() >= 300,
        "{d}"
    );
}

#[test]
fn a_rotated_secret_signs_beside_the_old_one_for_the_grace_period() {
    let srv = server(Settings {
        rotation_grace_ms: 10_000,
        ..Settings::default()
    });
    let key = srv.admin();
    let rx = Receiver::start();
    let (ep, old) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let r = post_json(
        &srv.url(&format!("/api/webhooks/{ep}/rotate-secret")),
        Some(&key),
        json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new = r.json()["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(r.json()["previous_secret_until"].as_i64().is_some());

    test_event(&srv, &key, &ep);
    let hit = rx
        .wait_for("during grace", WAIT, |h| h.len() == 1)
        .remove(0);
    assert_eq!(hit.header("webhook-signature").split(' ').count(), 2);
    verify_standard(&new, &hit).unwrap();
    verify_standard(&old, &hit).unwrap();
    verify_wagate(&new, &hit, "x-wagate-signature").unwrap();
    verify_wagate(&old, &hit, "x-wagate-signature-previous").unwrap();
    assert!(verify_wagate(&old, &hit, "x-wagate-signature").is_err());

    // After the grace period only the new secret signs.
    srv.clock.advance(11_000);
    test_event(&srv, &key, &ep);
    let hit = rx.wait_for("after grace", WAIT, |h| h.len() == 2).remove(1);
    assert_eq!(hit.header("webhook-signature").split(' ').count(), 1);
    assert!(hit.headers.get("x-wagate-signature-previous").is_none());
    verify_standard(&new, &hit).unwrap();
    assert!(verify_standard(&old, &hit).is_err());
}

#[test]
fn retries_follow_the_schedule_on_the_forwarders_clock() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let rx = Receiver::start();
    rx.script([Reply::status(500), Reply::status(502), Reply::status(503)]);
    let (ep, secret) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let (_, dlv) = test_event(&srv, &key, &ep);

    let mut expected_waits = vec![1_000i64, 5_000, 30_000];
    for n in 1..=3usize {
        let d = wait_delivery(&srv, &key, &dlv, "a failed attempt", |d| {
            d["attempt_count"] == n && d["next_at"].is_i64()
        });
        let wait = expected_waits.remove(0);
        let at = d["attempts"][n - 1]["at"].as_i64().unwrap();
        let next = d["next_at"].as_i64().unwrap();
        assert!(
            next - at >= wait && next - at < wait + 2_000,
            "attempt {n}: next try {} ms after, expected {wait}: {d}",
            next - at
        );
        assert_eq!(d["status"], "pending");
        assert_eq!(rx.hits().len(), n, "not tried again before it is due");
        srv.clock.advance(wait);
        srv.webhooks.wake();
    }
    let d = wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 502, 503, 200]);
    assert_eq!(d["attempts"][0]["response"], "answer 500");
    let hits = rx.hits();
    assert_eq!(hits.len(), 4);
    for h in &hits {
        assert_eq!(h.delivery_id(), dlv, "one delivery id on every retry");
        verify_standard(&secret, h).unwrap();
    }
}

#[test]
fn the_schedule_ends_in_failed_and_redeliver_starts_it_again() {
    let srv = server(Settings {
        retries_ms: vec![1_000, 2_000],
        ..Settings::default()
    });
    let key = srv.admin();
    let rx = Receiver::start();
    rx.set_default(Reply::status(500));
    let (ep, _) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let mut bus = srv.state.bus().subscribe();
    let (_, dlv) = test_event(&srv, &key, &ep);
    for n in 1..=2 {
        wait_delivery(&srv, &key, &dlv, "retry scheduled", |d| {
            d["attempt_count"] == n
        });
        srv.clock.advance(2_000);
        srv.webhooks.wake();
    }
    let d = wait_delivery(&srv, &key, &dlv, "failed", |d| d["status"] == "failed");
    assert_eq!(d["attempt_count"], 3);
    assert_eq!(d["last_error"], "HTTP 500");
    let failed = get(&srv.url("/api/deliveries?status=failed"), Some(&key)).json();
    assert_eq!(failed["deliveries"].as_array().unwrap().len(), 1);
    // The status screen and SSE hear the count (a test event belongs to no session).
    let heard = srv.block_on(async {
        loop {
            match tokio::time::timeout(WAIT, bus.recv()).await {
                Ok(Ok(wagate::events::Notice::Deliveries { session, failed })) => {
                    break (session, failed);
                }
                Ok(Ok(_)) => {}
                other => panic!("no deliveries notice: {other:?}"),
            }
        }
    });
    assert_eq!(heard, (String::new(), 1));
    let metrics = get(&srv.url("/metrics"), Some(&key)).text();
    assert!(
        metrics.contains("wagate_webhook_deliveries_ended_total{end=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("wagate_webhook_attempts_total{outcome=\"failed\"} 3"));

    rx.set_default(Reply::status(204));
    let r = post_json(
        &srv.url(&format!("/api/deliveries/{dlv}/redeliver")),
        Some(&key),
        json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let d = wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    assert_eq!(d["attempt_count"], 4);
    assert!(rx.hits().iter().all(|h| h.delivery_id() == dlv));
    let r = post_json(
        &srv.url("/api/deliveries/dlv_nope/redeliver"),
        Some(&key),
        json!({}),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn gone_disables_the_endpoint_retry_after_is_honoured_and_slow_receivers_time_out() {
    let srv = server(Settings {
        timeout: Duration::from_secs(1),
        ..Settings::default()
    });
    let key = srv.admin();

    let gone = Receiver::start();
    gone.set_default(Reply::status(410));
    let (ep_gone, _) = endpoint(&srv, &key, json!({"url": gone.url()}));
    let (_, d_gone) = test_event(&srv, &key, &ep_gone);

    let busy = Receiver::start();
    busy.script([Reply {
        headers: vec![("retry-after", "120".into())],
        ..Reply::status(429)
    }]);
    let (ep_busy, _) = endpoint(&srv, &key, json!({"url": busy.url()}));
    let (_, d_busy) = test_event(&srv, &key, &ep_busy);

    let slow = Receiver::start();
    slow.script([Reply {
        delay: Duration::from_secs(3),
        ..Reply::status(200)
    }]);
    let (ep_slow, _) = endpoint(&srv, &key, json!({"url": slow.url()}));
    let (_, d_slow) = test_event(&srv, &key, &ep_slow);

    let d = wait_delivery(&srv, &key, &d_gone, "410", |d| d["status"] == "failed");
    assert_eq!(d["attempts"][0]["status_code"], 410);
    let ep = get(&srv.url(&format!("/api/webhooks/{ep_gone}")), Some(&key)).json();
    assert_eq!(ep["enabled"], false);
    assert!(
        ep["disabled_reason"].as_str().unwrap().contains("410"),
        "{ep}"
    );

    let d = wait_delivery(&srv, &key, &d_busy, "429", |d| d["attempt_count"] == 1);
    let wait = d["next_at"].as_i64().unwrap() - d["attempts"][0]["at"].as_i64().unwrap();
    assert!(
        (120_000..122_000).contains(&wait),
        "Retry-After: 120 -> {wait} ms: {d}"
    );

    let d = wait_delivery(&srv, &key, &d_slow, "timeout", |d| d["attempt_count"] == 1);
    assert_eq!(d["attempts"][0]["status_code"], Value::Null);
    let err = d["attempts"][0]["error"].as_str().unwrap().to_lowercase();
    assert!(
        err.contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    assert_eq!(d["status"], "pending");
}

#[test]
fn a_receiver_down_then_up_gets_the_delivery_with_its_id() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let addr = Receiver::start().shutdown();
    let (ep, secret) = endpoint(&srv, &key, json!({"url": format!("http://{addr}/hook")}));
    let (event_id, dlv) = test_event(&srv, &key, &ep);
    let d = wait_delivery(&srv, &key, &dlv, "a refused attempt", |d| {
        d["attempt_count"] == 1
    });
    assert_eq!(d["attempts"][0]["status_code"], Value::Null);
    assert!(d["attempts"][0]["error"].as_str().is_some());

    let rx = Receiver::start_on(addr);
    srv.clock.advance(1_000);
    srv.webhooks.wake();
    let hit = rx.wait_for("the retry", WAIT, |h| !h.is_empty()).remove(0);
    assert_eq!(hit.delivery_id(), dlv);
    assert_eq!(hit.json()["id"], event_id.as_str());
    verify_standard(&secret, &hit).unwrap();
    wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
}

#[test]
fn first_attempts_go_out_in_event_order() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let rx = Receiver::start();
    let (ep, _) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let events: Vec<String> = (0..20).map(|_| test_event(&srv, &key, &ep).0).collect();
    let hits = rx.wait_for("20 events", WAIT, |h| h.len() == 20);
    let got: Vec<String> = hits
        .iter()
        .map(|h| h.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, events);
}

#[test]
fn session_events_reach_filtered_endpoints_and_the_log_pages_and_replays() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let k = Some(key.as_str());
    let all = Receiver::start();
    let other_only = Receiver::start();
    let (ep_all, _) = endpoint(&srv, &key, json!({"url": all.url()}));
    let (ep_other, _) = endpoint(
        &srv,
        &key,
        json!({"url": other_only.url(), "sessions": ["other"], "events": ["session.disconnected"]}),
    );

    // WhatsApp is a closed port here: a started session goes connecting -> disconnected.
    assert_eq!(
        post_json(&srv.url("/api/sessions/default/start"), k, json!({})).status,
        200
    );
    let hits = all.wait_for("session.disconnected", WAIT, |h| {
        h.iter()
            .any(|h| h.header("x-wagate-event") == "session.disconnected")
    });
    let hit = hits
        .iter()
        .find(|h| h.header("x-wagate-event") == "session.disconnected")
        .unwrap();
    let body = hit.json();
    assert_eq!(body["session"], "default");
    assert!(body["seq"].as_u64().unwrap() >= 1);
    assert!(body["data"]["attempts"].as_u64().unwrap() >= 1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(other_only.hits().is_empty(), "filtered out by session");

    let log = get(
        &srv.url("/api/deliveries?session=default&event=session.disconnected"),
        k,
    )
    .json();
    let list = log["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["endpoint"], ep_all.as_str());
    assert_eq!(list[0]["id"], hit.delivery_id());
    for bad in [
        "status=done",
        "event=message.recieved",
        "limit=0",
        "limit=5000",
        "colour=red",
    ] {
        let r = get(&srv.url(&format!("/api/deliveries?{bad}")), k);
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.error_code(), "invalid_query");
    }
    assert_eq!(get(&srv.url("/api/deliveries/dlv_nope"), k).status, 404);

    // Replay to the filtered endpoint: it takes session.disconnected of "other" only.
    let r = post_json(
        &srv.url(&format!("/api/webhooks/{ep_other}/replay?since=0")),
        k,
        json!({}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["deliveries"], 0);
    // Replay to the first endpoint: the same events again, with the same delivery ids.
    let before: Vec<String> = all.hits().iter().map(|h| h.delivery_id()).collect();
    let r = post_json(
        &srv.url(&format!("/api/webhooks/{ep_all}/replay?since=0")),
        k,
        json!({}),
    );
    let n = r.json()["deliveries"].as_u64().unwrap() as usize;
    assert!(n >= 1);
    let again = all.wait_for("the replay", WAIT, |h| h.len() >= before.len() + n);
    for h in &again[before.len()..] {
        assert!(
            before.contains(&h.delivery_id()),
            "replay reuses delivery ids"
        );
    }
    let r = post_json(
        &srv.url(&format!("/api/webhooks/{ep_all}/replay")),
        k,
        json!({}),
    );
    assert_eq!(r.status, 400);

    // Paging.
    test_event(&srv, &key, &ep_all);
    let page = get(&srv.url("/api/deliveries?limit=1"), k).json();
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 1);
    let next = page["next_before"].as_str().unwrap();
    let page2 = get(
        &srv.url(&format!("/api/deliveries?limit=1&before={next}")),
        k,
    )
    .json();
    assert!(page2["deliveries"][0]["id"].as_str().unwrap() < next);
    let everything = get(&srv.url("/api/deliveries?limit=1000"), k).json();
    assert!(
        everything.get("next_before").is_none(),
        "the last page says so"
    );
}

#[test]
fn qr_deliveries_are_dropped_once_their_code_expired() {
    let srv = server(Settings::default());
    let key = srv.admin();
    let rx = Receiver::start();
    let (_, _) = endpoint(
        &srv,
        &key,
        json!({"url": rx.url(), "events": ["session.qr"]}),
    );
    let qr = |expires_at: i64| {
        Event::new(
            "default",
            EventKind::SessionQr {
                code: format!("2@code{expires_at}"),
                expires_at,
            },
        )
    };
    let now = wagate::events::now_ms();
    let store = srv.state.store().clone();
    // One expired before it could go out, one still valid; written as the engine writes.
    let (stale, fresh) = (qr(now - 1), qr(now + 60_000));
    let (s2, f2) = (stale.clone(), fresh.clone());
    srv.block_on(store.write(move |t| {
        outbox::record(t, s2.clone())?;
        outbox::record(t, f2.clone())
    }))
    .unwrap();
    srv.webhooks.wake();
    let hits = rx.wait_for("the fresh QR", WAIT, |h| !h.is_empty());
    std::thread::sleep(Duration::from_millis(300));
    let hits_now = rx.hits();
    assert_eq!(hits_now.len(), 1, "only the fresh code went out");
    assert_eq!(hits[0].json()["id"], fresh.id.as_str());
    let log = get(&srv.url("/api/deliveries?status=expired"), Some(&key)).json();
    let list = log["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["event_id"], stale.id.as_str());
    assert!(list[0]["last_error"].as_str().unwrap().contains("expired"));
}

/// A board without a battery-backed clock boots unsynchronized: with
/// `require_clock_sync` the delivery waits (health says so, nothing reaches the receiver),
/// and goes once the clock is synchronized. A system that cannot tell does not hold them.
#[test]
fn deliveries_wait_for_the_clock_and_health_reports_it() {
    let srv = server(Settings {
        require_clock_sync: true,
        ..Settings::default()
    });
    srv.clock.set_synced(Some(false));
    let key = srv.admin();
    let rx = Receiver::start();
    let (ep, _) = endpoint(&srv, &key, json!({"url": rx.url()}));
    let (_, dlv) = test_event(&srv, &key, &ep);
    let health = |srv: &Server| get(&srv.url("/api/health"), None).json();
    let deadline = std::time::Instant::now() + WAIT;
    while health(&srv)["webhooks"]["waiting_for_clock"] != true {
        assert!(std::time::Instant::now() < deadline, "{}", health(&srv));
        std::thread::sleep(Duration::from_millis(50));
    }
    let h = health(&srv);
    assert_eq!(h["clock_synced"], false);
    assert_eq!(h["webhooks"]["require_clock_sync"], true);
    assert_eq!(h["webhooks"]["pending"], 1);
    // Held: a while later still no attempt and nothing received.
    std::thread::sleep(Duration::from_millis(1500));
    let d = delivery(&srv, &key, &dlv);
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(0), "{d}");
    assert!(rx.hits().is_empty());

    // NTP sets the clock: the delivery goes, with no call to wake it.
    srv.clock.set_synced(Some(true));
    rx.wait_for("the held delivery", WAIT, |h| h.len() == 1);
    wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    let h = health(&srv);
    assert_eq!(h["webhooks"]["waiting_for_clock"], false);
    assert_eq!(h["clock_synced"], true);

    // A system that cannot tell (adjtimex refused): deliveries are not held.
    srv.clock.set_synced(None);
    let (_, dlv) = test_event(&srv, &key, &ep);
    rx.wait_for("a delivery on an unknown clock", WAIT, |h| h.len() == 2);
    wait_delivery(&srv, &key, &dlv, "delivered", |d| {
        d["status"] == "delivered"
    });
    assert_eq!(health(&srv)["clock_synced"], Value::Null);

    // Without the gate an unsynchronized clock holds nothing.
    let plain = server(Settings::default());
    plain.clock.set_synced(Some(false));
    let k2 = plain.admin();
    let (ep2, _) = endpoint(&plain, &k2, json!({"url": rx.url()}));
    test_event(&plain, &k2, &ep2);
    rx.wait_for("no gate", WAIT, |h| h.len() == 3);
    assert_eq!(
        get(&plain.url("/api/health"), None).json()["webhooks"]["waiting_for_clock"],
        false
    );
}
