//! A real number's life through the API and wa-mock.
//!
//! Number checks and identities: a single check answers the
//! phone JID, the LID, the business flag and the about text; a number not on WhatsApp is
//! answered so; asking again is answered from the store (no second usync reaches the
//! server); over the check budget a single check is 429 with Retry-After and a batch answers
//! what it can with the rest deferred; the LID <-> phone pairs the session learned are read
//! both ways. The own profile: push name, about text and picture set, read back, kept over a
//! restart and seen by a contact. Passkey-gated linking: when WhatsApp answers the scan with a
//! passkey request, the session fails at once with `passkey_required` (it does not go on
//! showing codes), says what to do, and tells the webhook. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use serde_json::{Value, json};
use wa_mock::profile::ProfileChange;
use wa_mock::{Direction, StanzaFilter};

use crate::common::peer::{Rig, create_and_pair};
use crate::common::{call, get, post_json};

/// The `is_on_whatsapp` usync queries session device `device` sent (a `<contact>` query).
fn number_queries(rig: &Rig, device: &str) -> usize {
    rig.mock
        .stanzas(&StanzaFilter {
            device: Some(device.to_string()),
            tag: Some("iq".into()),
            direction: Some(Direction::In),
            ..StanzaFilter::default()
        })
        .iter()
        .filter(|r| r.xml.contains("usync") && r.xml.contains("<contact"))
        .count()
}

#[test]
fn numbers_are_checked_cached_and_paced_and_identities_read_both_ways() {
    let rig = Rig::start();
    let (s, k) = (&rig.server, Some(rig.key.as_str()));
    let a = create_and_pair(s, &rig.mock_rt, &rig.mock, k, "a");
    let b = create_and_pair(s, &rig.mock_rt, &rig.mock, k, "b");
    // A shop on WhatsApp Business with an about text, and no linked device.
    let shop = rig.mock.create_account().unwrap();
    assert!(rig.mock.set_profile(
        &shop,
        ProfileChange {
            about: Some("Open 9-5, Mon-Sat".into()),
            business: Some(true),
            ..ProfileChange::default()
        }
    ));
    let shop_lid = rig
        .mock
        .accounts()
        .into_iter()
        .find(|acc| acc.phone == shop)
        .unwrap()
        .lid;
    let r = send_json(
        &rig,
        "PUT",
        "/api/sessions/a/settings",
        json!({"check_per_minute": 3, "check_per_hour": 100, "check_per_day": 100}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let contact = |number: &str| get(&s.url(&format!("/api/sessions/a/contacts/{number}")), k);

    // b: a personal account, asked with a leading + and spaces.
    let spaced = format!("+{} {}", &b.phone[..2], &b.phone[2..]);
    let r = contact(&spaced.replace(' ', "%20"));
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    assert_eq!(got["number"], b.phone.as_str());
    assert_eq!(got["on_whatsapp"], true);
    assert_eq!(got["jid"], b.user_jid());
    assert_eq!(
        got["lid"],
        format!("{}@lid", b.lid),
        "the LID is known: {got}"
    );
    assert_eq!(got["business"], false);
    assert_eq!(got["cached"], false);
    assert_eq!(got["details"], true);
    assert_eq!(got["about"], Value::Null, "b set no about text");

    // The shop: business, with its about text.
    let got = contact(&shop).json();
    assert_eq!(got["on_whatsapp"], true, "{got}");
    assert_eq!(got["business"], true, "{got}");
    assert_eq!(got["about"], "Open 9-5, Mon-Sat");
    assert_eq!(got["lid"], format!("{shop_lid}@lid"));

    // Asked again: from the store, WhatsApp is not asked.
    let asked = number_queries(&rig, &a.jid);
    let again = contact(&b.phone).json();
    assert_eq!(again["cached"], true, "{again}");
    assert_eq!(again["lid"], format!("{}@lid", b.lid));
    assert_eq!(number_queries(&rig, &a.jid), asked, "no second usync");

    // A number nobody has: answered, not on WhatsApp. The budget (3 a minute) is now spent.
    let nobody = "15559990001";
    let got = contact(nobody).json();
    assert_eq!(got["on_whatsapp"], false, "{got}");
    assert_eq!(got["jid"], Value::Null);
    assert_eq!(got["lid"], Value::Null);
    let r = contact("15559990002");
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "check_budget_exceeded");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    let queries = number_queries(&rig, &a.jid);
    assert_eq!(queries, 3, "three numbers asked, one query each");

    // A batch over the budget: the cached ones answered, the rest deferred, none dropped.
    let batch = |numbers: Value| {
        post_json(
            &s.url("/api/sessions/a/contacts/check"),
            k,
            json!({ "numbers": numbers }),
        )
    };
    let r = batch(json!([
        b.phone,
        shop,
        "15559990002",
        "+1 555 999 0003",
        b.phone
    ]));
    assert_eq!(r.status, 200, "{}", r.text());
    let out = r.json();
    let numbers: Vec<&str> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, [b.phone.as_str(), shop.as_str()], "{out}");
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["cached"] == true)
    );
    assert_eq!(out["deferred"], json!(["15559990002", "15559990003"]));
    let retry = out["retry_after_s"].as_u64().unwrap();
    assert!((1..=60).contains(&retry), "{out}");
    assert_eq!(
        number_queries(&rig, &a.jid),
        queries,
        "nothing asked over the budget"
    );

    // More budget: the deferred numbers go in one query.
    let r = send_json(
        &rig,
        "PUT",
        "/api/sessions/a/settings",
        json!({"check_per_minute": 50, "check_per_hour": 100, "check_per_day": 100}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let out = batch(json!(["15559990002", "15559990003"])).json();
    assert_eq!(out["deferred"], json!([]), "{out}");
    assert_eq!(out["retry_after_s"], Value::Null);
    assert!(
        out["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["on_whatsapp"] == false && c["cached"] == false && c["details"] == false)
    );
    assert_eq!(number_queries(&rig, &a.jid), queries + 1);

    // A number WhatsApp answers under another JID (a numbering change): the answer is the
    // account's, alone and in a batch.
    let dialled = "551199990001";
    rig.mock.alias_number(dialled, &shop);
    let got = contact(dialled).json();
    assert_eq!(got["on_whatsapp"], true, "{got}");
    assert_eq!(got["jid"], format!("{shop}@s.whatsapp.net"));
    let dialled2 = "551199990002";
    rig.mock.alias_number(dialled2, &b.phone);
    let out = batch(json!([dialled2, "15559990006"])).json();
    assert_eq!(out["deferred"], json!([]), "{out}");
    assert_eq!(out["results"][0]["jid"], b.user_jid(), "{out}");
    assert_eq!(out["results"][1]["on_whatsapp"], false);

    // WhatsApp refuses one number (a per-user rate limit): deferred, not kept as "not on
    // WhatsApp"; asked again, answered.
    rig.mock
        .fail_next_check("15559990007", 429, "rate-overlimit");
    let out = batch(json!(["15559990007", "15559990008"])).json();
    assert_eq!(out["deferred"], json!(["15559990007"]), "{out}");
    assert_eq!(out["results"].as_array().unwrap().len(), 1, "{out}");
    assert!(out["retry_after_s"].as_u64().is_some());
    let again = batch(json!(["15559990007"])).json();
    assert_eq!(again["deferred"], json!([]), "{again}");
    assert_eq!(
        again["results"][0]["cached"], false,
        "not kept the first time"
    );
    rig.mock
        .fail_next_check("15559990009", 429, "rate-overlimit");
    let r = contact("15559990009");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("429"), "{}", r.text());

    // Bad input: a clear 422, nothing asked.
    let r = batch(json!(["15559990004", "not a number"]));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("not a number"), "{}", r.text());
    assert_eq!(batch(json!([])).status, 422);
    let many: Vec<String> = (0..501).map(|i| format!("1555{:07}", i)).collect();
    assert_eq!(batch(json!(many)).status, 422);
    assert_eq!(contact("12ab").status, 422);

    // A send names the recipient both ways where the session knows both: to a phone number
    // and to a LID. The LID send arrives.
    let send = |to: &str, text: &str| {
        post_json(
            &s.url("/api/sessions/a/messages/text"),
            k,
            json!({ "to": to, "text": text }),
        )
    };
    let by_number = send(&b.phone, "to the number");
    assert_eq!(by_number.status, 202, "{}", by_number.text());
    let by_number = by_number.json();
    assert_eq!(by_number["to_phone"], b.user_jid());
    assert_eq!(by_number["to_lid"], format!("{}@lid", b.lid), "{by_number}");
    let lid_jid = format!("{}@lid", b.lid);
    let by_lid = send(&lid_jid, "to the LID");
    assert_eq!(by_lid.status, 202, "{}", by_lid.text());
    let by_lid = by_lid.json();
    assert_eq!(by_lid["to"], lid_jid);
    assert_eq!(by_lid["to_phone"], b.user_jid(), "{by_lid}");
    assert_eq!(by_lid["to_lid"], lid_jid);
    let id = by_lid["id"].as_str().unwrap().to_string();
    rig.rx.wait_for(
        "the LID send at b",
        std::time::Duration::from_secs(40),
        |hits| {
            hits.iter().any(|h| {
                let e = h.json();
                e["type"] == "message.received"
                    && e["session"] == "b"
                    && e["data"]["text"] == "to the LID"
            })
        },
    );
    let rec = get(&s.url(&format!("/api/sessions/a/messages/{id}")), k).json();
    assert_eq!(rec["to_phone"], b.user_jid(), "{rec}");
    assert_eq!(rec["to_lid"], lid_jid);

    // Identities: what the session learned, both ways, also once it is stopped.
    let r = call("POST", &s.url("/api/sessions/a/stop"), k, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let by_phone = get(&s.url(&format!("/api/sessions/a/lids/pn/{}", b.phone)), k);
    assert_eq!(by_phone.status, 200, "{}", by_phone.text());
    assert_eq!(by_phone.json()["lid"], format!("{}@lid", b.lid));
    assert_eq!(by_phone.json()["phone"], b.user_jid());
    let by_lid = get(&s.url(&format!("/api/sessions/a/lids/{}@lid", b.lid)), k);
    assert_eq!(by_lid.status, 200, "{}", by_lid.text());
    assert_eq!(by_lid.json()["phone"], b.user_jid());
    let bare = get(&s.url(&format!("/api/sessions/a/lids/{}", shop_lid)), k).json();
    assert_eq!(bare["phone"], format!("{shop}@s.whatsapp.net"));
    let r = get(&s.url("/api/sessions/a/lids/999999999999@lid"), k);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "identity_not_found");
    assert_eq!(get(&s.url("/api/sessions/a/lids/abc"), k).status, 422);
    // Cached answers still serve while the session is stopped; new numbers need it.
    assert_eq!(contact(&b.phone).json()["cached"], true);
    assert_eq!(contact("15559990009").status, 409);
}

/// A small stand-in JPEG (SOI, APP0 "JFIF", some bytes, EOI): wa-mock keeps and serves the
/// bytes as they came; the real server wants a real 640x640 JPEG.
fn jpeg() -> Vec<u8> {
    let mut b = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    b.extend((0..200u16).map(|i| (i % 251) as u8));
    b.extend([0xFF, 0xD9]);
    b
}

/// The bytes at a wa-mock media URL.
fn download(rig: &Rig, url: &str) -> Vec<u8> {
    use std::io::Read as _;
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let pem = rig.mock.media_cert_pem().unwrap();
    let cert = Certificate::from_pem(pem.as_bytes()).unwrap().to_owned();
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&[cert]))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    let mut out = Vec::new();
    agent
        .get(url)
        .call()
        .unwrap()
        .into_body()
        .into_reader()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A request with a JSON body, as the rig's admin.
fn send_json(rig: &Rig, method: &str, path: &str, body: Value) -> crate::common::Resp {
    call(
        method,
        &rig.server.url(path),
        Some(&rig.key),
        &[],
        Some(("application/json", body.to_string().into_bytes())),
    )
}

fn patch(rig: &Rig, sid: &str, body: Value) -> crate::common::Resp {
    send_json(rig, "PATCH", &format!("/api/sessions/{sid}/profile"), body)
}

#[test]
fn the_own_profile_is_changed_read_back_and_seen_by_contacts() {
    use base64::Engine as _;
    let rig = Rig::start();
    let (s, k) = (&rig.server, Some(rig.key.as_str()));
    let a = create_and_pair(s, &rig.mock_rt, &rig.mock, k, "a");
    let b = create_and_pair(s, &rig.mock_rt, &rig.mock, k, "b");

    let r = get(&s.url("/api/sessions/b/profile"), k);
    assert_eq!(r.status, 200, "{}", r.text());
    let before = r.json();
    assert_eq!(before["phone"], b.user_jid());
    assert_eq!(before["lid"], format!("{}@lid", b.lid));
    assert_eq!(before["about"], Value::Null);
    assert_eq!(before["picture_url"], Value::Null);

    let picture = jpeg();
    let r = patch(
        &rig,
        "b",
        json!({
            "push_name": "Bob's Bikes",
            "about": "Fixing bikes since 1999",
            "picture": base64::engine::general_purpose::STANDARD.encode(&picture),
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let after = r.json();
    assert_eq!(after["push_name"], "Bob's Bikes");
    assert_eq!(after["about"], "Fixing bikes since 1999");
    let url = after["picture_url"].as_str().expect("a picture URL");
    assert_eq!(download(&rig, url), picture, "the picture is the one sent");
    // WhatsApp has the name (wa-mock's account), and a restart keeps it.
    let name_of = |phone: &str| {
        rig.mock
            .accounts()
            .into_iter()
            .find(|acc| acc.phone == phone)
            .unwrap()
            .push_name
    };
    assert_eq!(name_of(&b.phone), "Bob's Bikes");
    // The name goes out as a presence without a type (online); the policy is put back.
    let last_presence = || {
        rig.mock
            .stanzas(&StanzaFilter {
                device: Some(b.jid.clone()),
                tag: Some("presence".into()),
                direction: Some(Direction::In),
                ..StanzaFilter::default()
            })
            .into_iter()
            .filter(|r| !r.node.attrs.contains_key("to"))
            .map(|r| r.xml)
            .next_back()
            .unwrap_or_default()
    };
    crate::common::peer::wait_until("b offline again after its new name", || {
        last_presence().contains("type=\"unavailable\"")
    });
    for verb in ["stop", "start"] {
        let r = call(
            "POST",
            &s.url(&format!("/api/sessions/b/{verb}")),
            k,
            &[],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    crate::common::peer::wait_until("b connected again", || {
        get(&s.url("/api/sessions/b"), k).json()["state"] == "connected"
    });
    let again = get(&s.url("/api/sessions/b/profile"), k).json();
    assert_eq!(again["push_name"], "Bob's Bikes", "{again}");
    assert_eq!(
        name_of(&b.phone),
        "Bob's Bikes",
        "the restart did not rename the account"
    );

    // A contact sees the about text and the picture.
    let seen = get(&s.url(&format!("/api/sessions/a/contacts/{}", b.phone)), k).json();
    assert_eq!(seen["about"], "Fixing bikes since 1999", "{seen}");
    assert_eq!(
        download(&rig, seen["picture_url"].as_str().unwrap()),
        picture
    );
    let _ = a;

    // Removing the picture; bad input refused by field, nothing changed.
    let r = patch(&rig, "b", json!({ "picture": null }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["picture_url"], Value::Null);
    for (body, field) in [
        (json!({ "push_name": "x".repeat(26) }), "push_name"),
        (json!({ "about": "y".repeat(140) }), "about"),
        (json!({ "picture": "iVBORw0KGgo=" }), "picture"),
        (json!({ "picture": "%%%" }), "picture"),
        (json!({}), "push_name, about or picture"),
    ] {
        let r = patch(&rig, "b", body);
        assert_eq!(r.status, 422, "{}", r.text());
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(field),
            "{}",
            r.text()
        );
    }
    let r = patch(&rig, "b", json!({ "nickname": "b" }));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        get(&s.url("/api/sessions/b/profile"), k).json()["push_name"],
        "Bob's Bikes"
    );
}

#[test]
fn a_passkey_request_at_pairing_fails_the_session_with_what_to_do() {
    passkey_fails_the_pairing(wa_mock::MockServer::demand_passkey_next);
}

/// The request without its options, and fetching them fails: whatsapp-rust reports a
/// passkey error instead of a request; the pairing ends the same way.
#[test]
fn a_passkey_request_whose_options_cannot_be_read_fails_the_session_too() {
    passkey_fails_the_pairing(wa_mock::MockServer::demand_passkey_next_failing_options);
}

fn passkey_fails_the_pairing(demand: fn(&wa_mock::MockServer)) {
    let rig = Rig::start();
    let (s, k) = (&rig.server, Some(rig.key.as_str()));
    let r = post_json(&s.url("/api/sessions"), k, json!({ "id": "shop" }));
    assert_eq!(r.status, 201, "{}", r.text());
    let mut code = None;
    crate::common::peer::wait_until("a QR code", || {
        let r = call(
            "GET",
            &s.url("/api/sessions/shop/qr"),
            k,
            &[("Accept", "application/json")],
            None,
        );
        code = (r.status == 200)
            .then(|| r.json()["code"].as_str().map(str::to_string))
            .flatten();
        code.is_some()
    });
    demand(&rig.mock);
    let scanned = rig.mock_rt.block_on(rig.mock.scan(&code.unwrap()));
    assert!(
        matches!(scanned, Err(wa_mock::Error::PasskeyDemanded)),
        "{scanned:?}"
    );

    let mut state = Value::Null;
    crate::common::peer::wait_until("the session to fail", || {
        state = get(&s.url("/api/sessions/shop"), k).json();
        state["state"] == "failed"
    });
    assert_eq!(state["reason"], "passkey_required", "{state}");
    let message = state["message"].as_str().unwrap();
    assert!(
        message.contains("Passkeys"),
        "says where to look: {message}"
    );
    // No code to scan any more.
    let r = call(
        "GET",
        &s.url("/api/sessions/shop/qr"),
        k,
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(r.status, 409, "{}", r.text());

    // The webhook hears it, with the reason and the words.
    let hits = rig.rx.wait_for(
        "session.failed",
        std::time::Duration::from_secs(30),
        |hits| hits.iter().any(|h| h.json()["type"] == "session.failed"),
    );
    let failed = hits
        .iter()
        .map(|h| h.json())
        .find(|e| e["type"] == "session.failed")
        .unwrap();
    assert_eq!(failed["session"], "shop");
    assert_eq!(failed["data"]["reason"], "passkey_required", "{failed}");
    assert_eq!(failed["data"]["message"], message);

    // Starting again pairs normally once WhatsApp no longer asks.
    let r = call("POST", &s.url("/api/sessions/shop/start"), k, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let account = crate::common::peer::scan_and_connect(s, &rig.mock_rt, &rig.mock, k, "shop");
    assert!(!account.phone.is_empty());
}
