//! Webhooks end to end through wa-mock: two wagate sessions paired by the mock phone, a text
//! from A to B, and the signed deliveries a local receiver gets: B's `message.received`, A's
//! `message.sent`, `message.delivered` and (after B marks it read through the engine)
//! `message.read`, in that order. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use std::time::{Duration, Instant};

use crate::common::peer::Rig;
use crate::common::receiver::{Hit, verify_standard, verify_wagate};
use crate::common::{Server, get, post_json};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use wa_mock::MockServer;

const STEP: Duration = Duration::from_secs(40);

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Create a session through the API and pair it by scanning its QR with the mock phone.
fn pair(server: &Server, mock_rt: &Runtime, mock: &MockServer, key: &str, id: &str) -> String {
    let k = Some(key);
    assert_eq!(
        post_json(&server.url("/api/sessions"), k, json!({ "id": id })).status,
        201
    );
    let account = common::peer::scan_and_connect(server, mock_rt, mock, k, id);
    account.user_jid()
}

/// A one-to-one message whose stanza names its sender one way only (wa-mock without
/// `sender_lid` / `sender_pn`) still carries both addresses: the other comes from the mapping
/// the session's client learned when it wrote to that number first.
#[test]
fn a_sender_named_one_way_gets_the_other_address_from_the_mapping() {
    let rig = Rig::with_mock(
        wa_mock::MockConfig {
            sender_alt: false,
            ..wa_mock::MockConfig::default()
        },
        |_| {},
    );
    let k = Some(rig.key.as_str());
    let a = common::peer::create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "a");
    let b = common::peer::create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "b");
    let text = |from: &str, to: &str, body: &str| {
        let r = post_json(
            &rig.server
                .url(&format!("/api/sessions/{from}/messages/text")),
            k,
            json!({ "to": to, "text": body }),
        );
        assert_eq!(r.status, 202, "{}", r.text());
    };
    let received = |session: &str, body: &str| -> Value {
        let hits = rig.rx.wait_for(body, STEP, |h| {
            of(h, session, "message.received")
                .iter()
                .any(|e| e["data"]["text"] == body)
        });
        of(&hits, session, "message.received")
            .into_iter()
            .find(|e| e["data"]["text"] == body)
            .unwrap()["data"]
            .clone()
    };
    // B writes first: its client asks WhatsApp for A's devices and LID.
    text("b", &a.user_jid(), "first from B");
    received("a", "first from B");
    // A answers; the stanza names A one way only, B's client knows the other.
    text("a", &b.user_jid(), "answer from A");
    let data = received("b", "answer from A");
    assert_eq!(data["from_phone"], a.user_jid().as_str(), "{data}");
    assert_eq!(
        data["from_lid"],
        format!("{}@lid", a.lid).as_str(),
        "{data}"
    );
    // No message stanza wa-mock handed over named its sender the other way.
    let out = rig.mock.stanzas(&wa_mock::StanzaFilter {
        tag: Some("message".into()),
        direction: Some(wa_mock::Direction::Out),
        ..Default::default()
    });
    assert!(!out.is_empty());
    assert!(
        out.iter()
            .all(|s| !s.xml.contains("sender_lid") && !s.xml.contains("sender_pn")),
        "wa-mock named a sender both ways"
    );
}

fn of(hits: &[Hit], session: &str, kind: &str) -> Vec<Value> {
    hits.iter()
        .map(Hit::json)
        .filter(|b| b["session"] == session && b["type"] == kind)
        .collect()
}

#[test]
fn a_conversation_arrives_as_signed_webhooks_in_order() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        secret,
    } = Rig::start();
    let k = Some(key.as_str());

    let a_jid = pair(&server, &mock_rt, &mock, &key, "a");
    let b_jid = pair(&server, &mock_rt, &mock, &key, "b");
    let connected = rx.wait_for("both session.connected", STEP, |h| {
        of(h, "a", "session.connected").len() == 1 && of(h, "b", "session.connected").len() == 1
    });
    let a_conn = &of(&connected, "a", "session.connected")[0];
    assert_eq!(a_conn["data"]["phone"], a_jid.as_str());
    assert!(
        a_conn["data"]["lid"]
            .as_str()
            .is_some_and(|l| l.ends_with("@lid"))
    );

    let r = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({ "to": b_jid, "text": "hello B, from A" }),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let msg_id = r.json()["id"].as_str().unwrap().to_string();

    // B receives it: message.received, signed.
    let hits = rx.wait_for("message.received", STEP, |h| {
        !of(h, "b", "message.received").is_empty()
    });
    let hit = hits
        .iter()
        .find(|h| h.json()["type"] == "message.received")
        .unwrap();
    verify_wagate(&secret, hit, "x-wagate-signature").unwrap();
    verify_standard(&secret, hit).unwrap();
    let got = hit.json();
    let data = &got["data"];
    assert_eq!(data["text"], "hello B, from A");
    assert_eq!(data["from_phone"], a_jid.as_str());
    // WhatsApp names a direct message's sender both ways (`sender_lid` beside a phone-number
    // `from`): both are known, so both are there.
    let a_lid = get(&server.url("/api/sessions/a"), k).json()["lid"].clone();
    assert!(
        a_lid.as_str().is_some_and(|l| l.ends_with("@lid")),
        "{a_lid}"
    );
    assert_eq!(data["from_lid"], a_lid, "{data}");
    assert!(data["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(
        got["id"].as_str().unwrap()["evt_".len()..],
        data["id"].as_str().unwrap()["msg_".len()..],
        "the event id is derived from the message"
    );
    let wa_id = data["wa_id"].as_str().unwrap().to_string();
    let chat = data["chat"].as_str().unwrap().to_string();

    // A: sent, then delivered.
    rx.wait_for("message.delivered", STEP, |h| {
        !of(h, "a", "message.delivered").is_empty()
    });
    // B reads it through the engine.
    server
        .block_on(
            server
                .state
                .manager()
                .mark_read("b", &chat, None, &[wa_id.as_str()]),
        )
        .unwrap();
    let hits = rx.wait_for("message.read", STEP, |h| {
        !of(h, "a", "message.read").is_empty()
    });

    let a_msgs: Vec<Value> = hits
        .iter()
        .map(Hit::json)
        .filter(|b| b["session"] == "a" && b["type"].as_str().unwrap().starts_with("message."))
        .collect();
    let kinds: Vec<&str> = a_msgs.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["message.sent", "message.delivered", "message.read"]);
    let seqs: Vec<u64> = a_msgs.iter().map(|b| b["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq grows: {seqs:?}");
    for b in &a_msgs {
        assert_eq!(
            b["data"]["id"],
            msg_id.as_str(),
            "the id the send API returned"
        );
        assert_eq!(b["data"]["wa_id"], wa_id.as_str());
        assert_eq!(b["data"]["to_phone"], b_jid.as_str());
        assert!(
            b["data"]["to_lid"].is_null()
                || b["data"]["to_lid"]
                    .as_str()
                    .is_some_and(|l| l.ends_with("@lid")),
            "{b}"
        );
    }
    for h in &hits {
        verify_standard(&secret, h).unwrap();
        verify_wagate(&secret, h, "x-wagate-signature").unwrap();
    }

    // The log agrees: every delivery delivered, one per event.
    let mut log = Value::Null;
    wait_until("every delivery recorded as delivered", || {
        log = get(&server.url("/api/deliveries?limit=1000"), k).json();
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered")
    });
    let list = log["deliveries"].as_array().unwrap();
    let mut events: Vec<&str> = list
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let n = events.len();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), n, "one delivery per event and endpoint");
}

/// The engine's other events reach the receiver signed: `session.qr` while pairing (with
/// its code and expiry), `message.failed` when WhatsApp refuses a message (its code in the
/// reason), `session.failed` when the number is banned.
#[test]
fn qr_refusals_and_bans_arrive_as_webhooks() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        secret,
    } = Rig::start();
    let k = Some(key.as_str());

    assert_eq!(
        post_json(&server.url("/api/sessions"), k, json!({ "id": "a" })).status,
        201
    );
    let a = common::peer::scan_and_connect(&server, &mock_rt, &mock, k, "a");
    let hits = rx.wait_for("session.qr", STEP, |h| !of(h, "a", "session.qr").is_empty());
    let qr = &of(&hits, "a", "session.qr")[0];
    assert!(
        qr["data"]["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{qr}"
    );
    assert!(qr["data"]["expires_at"].as_i64().is_some(), "{qr}");
    let contact = mock.create_account().unwrap();

    // WhatsApp refuses the next message: message.failed with the server's code.
    mock.fault_next_message(Some(&a.phone), wa_mock::MessageFault::Refuse { code: 479 });
    let r = post_json(
        &server.url("/api/sessions/a/messages/text"),
        k,
        json!({ "to": contact, "text": "refused" }),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let msg_id = r.json()["id"].as_str().unwrap().to_string();
    let hits = rx.wait_for("message.failed", STEP, |h| {
        !of(h, "a", "message.failed").is_empty()
    });
    let failed = &of(&hits, "a", "message.failed")[0];
    assert_eq!(failed["data"]["id"], msg_id.as_str());
    assert!(
        failed["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("479")),
        "{failed}"
    );

    // Banned at the next login: session.failed, reason banned.
    mock.fail_next_login(
        Some(&a.phone),
        wa_mock::LoginFailure::TempBan {
            code: 101,
            expire_secs: 3600,
        },
    );
    assert!(mock.drop_connection(&a.addr()));
    let hits = rx.wait_for("session.failed", STEP, |h| {
        !of(h, "a", "session.failed").is_empty()
    });
    let banned = &of(&hits, "a", "session.failed")[0];
    assert_eq!(banned["data"]["reason"], "banned", "{banned}");
    for h in &hits {
        verify_standard(&secret, h).unwrap();
        verify_wagate(&secret, h, "x-wagate-signature").unwrap();
    }
}
