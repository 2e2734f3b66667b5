//! Conversations end to end through wa-mock: a wagate session edits and deletes for
//! everyone what it sent (the recipient, a bare whatsapp-rust client, decrypts the
//! protocol messages and the stanzas carry WhatsApp's `edit` attribute); a contact edits and
//! deletes what it sent (the received records show it); the history pages through both.
//! Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::collections::HashSet;

use crate::common::peer::{Peer, Rig, STEP, create_and_pair, peer, wait, wait_until};
use crate::common::receiver::Hit;
use crate::common::{Resp, call, get, post_json};
use serde_json::{Value, json};
use wa_mock::StanzaFilter;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::waproto::whatsapp as wa;

/// The next protocol message the peer decrypts from someone else, with its stanza id.
async fn protocol(peer: &mut Peer, what: &str) -> (String, wa::message::ProtocolMessage) {
    wait(&mut peer.events, what, |e| match e {
        Event::Messages(batch) => batch.messages.iter().find_map(|m| {
            (!m.info.source.is_from_me)
                .then(|| m.message.protocol_message.as_option().cloned())
                .flatten()
                .map(|p| (m.info.id.to_string(), p))
        }),
        _ => None,
    })
    .await
}

fn patch(rig: &Rig, path: &str, body: Value, headers: &[(&str, &str)]) -> Resp {
    call(
        "PATCH",
        &rig.server.url(path),
        Some(&rig.key),
        headers,
        Some(("application/json", body.to_string().into_bytes())),
    )
}

fn post(rig: &Rig, path: &str, headers: &[(&str, &str)]) -> Resp {
    call("POST", &rig.server.url(path), Some(&rig.key), headers, None)
}

fn message(rig: &Rig, id: &str) -> Value {
    let r = get(
        &rig.server.url(&format!("/api/sessions/a/messages/{id}")),
        Some(&rig.key),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn send_text(rig: &Rig, to: &str, text: &str) -> String {
    let r = post_json(
        &rig.server.url("/api/sessions/a/messages/text"),
        Some(&rig.key),
        json!({"to": to, "text": text}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

/// The `edit` attribute of the message stanza with this id that session a's device sent.
fn edit_attr(rig: &Rig, wa_id: &str) -> Option<String> {
    rig.mock
        .stanzas(&StanzaFilter {
            tag: Some("message".into()),
            ..Default::default()
        })
        .into_iter()
        .find(|s| s.xml.contains(&format!("id=\"{wa_id}\"")))
        .and_then(|s| {
            let at = s.xml.find(" edit=\"")? + 7;
            let end = s.xml[at..].find('"')?;
            Some(s.xml[at..at + end].to_string())
        })
}

fn webhook(hits: &[Hit], ty: &str, pick: impl Fn(&Value) -> bool) -> Option<Value> {
    hits.iter()
        .map(Hit::json)
        .find(|b| b["type"] == ty && pick(&b["data"]))
        .map(|b| b["data"].clone())
}

#[test]
fn a_sent_message_is_edited_and_deleted_for_everyone() {
    let rig = Rig::start();
    let k = Some(rig.key.as_str());
    create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "a");
    let mut b = rig.mock_rt.block_on(peer(&rig.mock));
    let b_jid = b.jid.clone();

    let first = send_text(&rig, &b_jid, "meet at 5");
    let _ = crate::common::peer::text_of(&mut b, &rig.mock_rt, "the first text");
    wait_until("the first text sent", || {
        message(&rig, &first)["status"] != "queued"
    });
    let wa_id = message(&rig, &first)["wa_id"].as_str().unwrap().to_string();

    // Bad edits first: nothing is queued for them.
    let path = format!("/api/sessions/a/messages/{first}");
    let r = patch(&rig, &path, json!({"caption": "x"}), &[]);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("caption: unknown field"), "{}", r.text());
    let r = patch(&rig, &path, json!({"text": ""}), &[]);
    assert_eq!(r.status, 422, "{}", r.text());
    let r = patch(
        &rig,
        "/api/sessions/a/messages/msg_nothing",
        json!({"text": "x"}),
        &[],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "message_not_found");
    let r = post_json(
        &rig.server.url("/api/sessions/a/messages/location"),
        k,
        json!({"to": b_jid, "latitude": 1.5, "longitude": 2.5}),
    );
    let place = r.json()["id"].as_str().unwrap().to_string();
    wait_until("the location sent", || {
        message(&rig, &place)["status"] != "queued"
    });
    let r = patch(
        &rig,
        &format!("/api/sessions/a/messages/{place}"),
        json!({"text": "x"}),
        &[],
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.error_code(), "not_editable");

    // The edit: 202, durable, idempotent by key.
    let r = patch(
        &rig,
        &path,
        json!({"text": "meet at 6"}),
        &[("Idempotency-Key", "edit-1")],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let edit = r.json()["id"].as_str().unwrap().to_string();
    assert_ne!(edit, first, "an edit is a message of its own");
    let again = patch(
        &rig,
        &path,
        json!({"text": "meet at 6"}),
        &[("Idempotency-Key", "edit-1")],
    );
    assert_eq!(again.status, 202);
    assert_eq!(again.json()["id"], edit.as_str());
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // The recipient decrypts a MESSAGE_EDIT naming the first message, with the new text,
    // in a stanza of its own id marked edit="1".
    let (stanza_id, p) = rig.mock_rt.block_on(protocol(&mut b, "the edit"));
    assert_eq!(
        p.r#type,
        Some(wa::message::protocol_message::Type::MESSAGE_EDIT)
    );
    let key = p.key.as_option().expect("the target's key");
    assert_eq!(key.id.as_deref(), Some(wa_id.as_str()));
    assert_eq!(key.from_me, Some(true));
    let edited = p.edited_message.as_option().expect("the new content");
    assert_eq!(edited.conversation.as_deref(), Some("meet at 6"));
    assert_ne!(stanza_id, wa_id);
    assert_eq!(edit_attr(&rig, &stanza_id).as_deref(), Some("1"));

    wait_until("the first message marked edited", || {
        message(&rig, &first)["edited_at"].is_i64()
    });
    let e = message(&rig, &edit);
    assert_eq!(e["kind"], "edit");
    assert_eq!(e["target"], first.as_str());
    assert_eq!(e["wa_id"], stanza_id.as_str());
    let hits = rig.rx.wait_for("message.sent of the edit", STEP, |h| {
        webhook(h, "message.sent", |d| d["id"] == edit.as_str()).is_some()
    });
    let sent = webhook(&hits, "message.sent", |d| d["id"] == edit.as_str()).unwrap();
    assert_eq!(sent["kind"], "edit");
    assert_eq!(sent["target"], first.as_str());

    // Delete for everyone: a REVOKE naming it, edit="7".
    let r = post(
        &rig,
        &format!("{path}/revoke"),
        &[("Idempotency-Key", "rev-1")],
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let revoke = r.json()["id"].as_str().unwrap().to_string();
    let (stanza_id, p) = rig.mock_rt.block_on(protocol(&mut b, "the revoke"));
    assert_eq!(p.r#type, Some(wa::message::protocol_message::Type::REVOKE));
    assert_eq!(
        p.key.as_option().and_then(|k| k.id.as_deref()),
        Some(wa_id.as_str())
    );
    assert_eq!(edit_attr(&rig, &stanza_id).as_deref(), Some("7"));
    wait_until("the first message marked revoked", || {
        message(&rig, &first)["revoked_at"].is_i64()
    });
    assert_eq!(message(&rig, &revoke)["target"], first.as_str());
    // Gone: no edit, no second revoke.
    let r = patch(&rig, &path, json!({"text": "later"}), &[]);
    assert_eq!((r.status, r.error_code().as_str()), (409, "revoked"));
    let r = post(&rig, &format!("{path}/revoke"), &[]);
    assert_eq!((r.status, r.error_code().as_str()), (409, "revoked"));

    // A message that has not gone yet is cancelled, not revoked: nothing reaches WhatsApp.
    let r = post_json(&rig.server.url("/api/sessions/a/stop"), k, json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let waiting = send_text(&rig, &b_jid, "never mind");
    let r = post(
        &rig,
        &format!("/api/sessions/a/messages/{waiting}/revoke"),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
}

#[test]
fn a_contacts_edits_and_deletes_show_on_the_received_records_and_the_history_pages() {
    let rig = Rig::start();
    let k = Some(rig.key.as_str());
    let a = create_and_pair(&rig.server, &rig.mock_rt, &rig.mock, k, "a");
    let c = rig.mock_rt.block_on(peer(&rig.mock));
    let to = whatsapp_rust::Jid::pn(a.phone.as_str());
    let text = |t: &str| wa::Message {
        conversation: Some(t.into()),
        ..Default::default()
    };
    let one = rig
        .mock_rt
        .block_on(c.client.send_message(&to, text("price is 10")))
        .unwrap();
    let two = rig
        .mock_rt
        .block_on(c.client.send_message(&to, text("oops, wrong chat")))
        .unwrap();
    let received_id = |wa_id: &str| -> String {
        let hits = rig.rx.wait_for("message.received", STEP, |h| {
            webhook(h, "message.received", |d| d["wa_id"] == wa_id).is_some()
        });
        webhook(&hits, "message.received", |d| d["wa_id"] == wa_id).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (one_id, two_id) = (received_id(&one.message_id), received_id(&two.message_id));
    let shown = message(&rig, &one_id);
    assert_eq!(shown["direction"], "in");
    assert_eq!(shown["text"], "price is 10");
    assert!(shown["edited_at"].is_null() && shown["revoked_at"].is_null());

    rig.mock_rt
        .block_on(
            c.client
                .edit_message(to.clone(), one.message_id.clone(), text("price is 12")),
        )
        .unwrap();
    rig.mock_rt
        .block_on(c.client.revoke_message(
            to.clone(),
            two.message_id.clone(),
            whatsapp_rust::RevokeType::Sender,
        ))
        .unwrap();
    wait_until("the edit recorded", || {
        message(&rig, &one_id)["edited_at"].is_i64()
    });
    assert_eq!(message(&rig, &one_id)["text"], "price is 12");
    wait_until("the revoke recorded", || {
        message(&rig, &two_id)["revoked_at"].is_i64()
    });
    // The edit and the revoke themselves arrived as message.received (kind edit / revoke)
    // naming their target.
    let hits = rig.rx.hits();
    let edit = webhook(&hits, "message.received", |d| d["kind"] == "edit").unwrap();
    assert_eq!(edit["target"]["id"], one_id.as_str());

    // Two messages the other way.
    let b_jid = c.jid.clone();
    let out1 = send_text(&rig, &b_jid, "thanks");
    let out2 = send_text(&rig, &b_jid, "see you");
    wait_until("both sent", || message(&rig, &out2)["status"] != "queued");

    // The history, newest first, two per page: every message once, ids descending.
    let page = |q: &str| -> Value {
        let r = get(&rig.server.url(&format!("/api/sessions/a/messages?{q}")), k);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.json()
    };
    let mut seen = Vec::new();
    let mut q = "limit=2".to_string();
    loop {
        let p = page(&q);
        let items = p["messages"].as_array().unwrap().clone();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_string()));
        match p["next"].as_str() {
            Some(next) => q = format!("limit=2&after={next}"),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no message twice: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first");
    for id in [&one_id, &two_id, &out1, &out2] {
        assert!(seen.contains(id), "{id} in the history: {seen:?}");
    }
    // Received only, oldest first (stanza times are whole seconds: messages of the same
    // second keep a fixed order of their own).
    let inbound = page("direction=in&order=oldest");
    let items = inbound["messages"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut ascending = ids.clone();
    ascending.sort();
    assert_eq!(ids, ascending, "oldest first");
    let mut kinds: Vec<&str> = items
        .iter()
        .map(|m| {
            assert_eq!(m["direction"], "in");
            m["kind"].as_str().unwrap()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec!["edit", "revoke", "text", "text"]);
    let first = items.iter().find(|m| m["id"] == one_id.as_str()).unwrap();
    assert_eq!(first["text"], "price is 12", "the edited text");
    // Sent only, to that chat, by phone digits.
    let digits = b_jid.trim_end_matches("@s.whatsapp.net");
    let out = page(&format!("direction=out&chat={digits}"));
    let ids: Vec<&str> = out["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![out2.as_str(), out1.as_str()]);
    assert_eq!(out["messages"][0]["text"], "see you");
    assert_eq!(out["messages"][0]["direction"], "out");
    // A message and its edit that arrive together (sent while the session was stopped):
    // the edit still marks the message.
    let r = post_json(&rig.server.url("/api/sessions/a/stop"), k, json!({}));
    assert_eq!(r.status, 200);
    wait_until("a stopped", || {
        get(&rig.server.url("/api/sessions/a"), k).json()["state"] == "stopped"
    });
    let late = rig
        .mock_rt
        .block_on(c.client.send_message(&to, text("see you at 8")))
        .unwrap();
    rig.mock_rt
        .block_on(
            c.client
                .edit_message(to.clone(), late.message_id.clone(), text("see you at 9")),
        )
        .unwrap();
    let r = post_json(&rig.server.url("/api/sessions/a/start"), k, json!({}));
    assert_eq!(r.status, 200);
    let late_id = received_id(&late.message_id);
    wait_until("the offline edit recorded", || {
        message(&rig, &late_id)["edited_at"].is_i64()
    });
    assert_eq!(message(&rig, &late_id)["text"], "see you at 9");

    // Bad queries are named.
    for (q, field) in [
        ("direction=sideways", "direction"),
        ("order=random", "order"),
        ("limit=0", "limit"),
        ("after=nope", "after"),
        ("chat=not%20a%20jid", "chat"),
    ] {
        let r = get(&rig.server.url(&format!("/api/sessions/a/messages?{q}")), k);
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains(field), "{q}: {}", r.text());
    }
}
