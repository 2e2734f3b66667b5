//! A customer's message that a crash left decrypted but never kept is asked for again and
//! arrives. whatsapp-rust can save a decrypt's ratchet step (its whole-cache Signal flush)
//! before the message's pending row is written; a SIGKILL between the two leaves redb past
//! the message with no copy of it. WhatsApp then hands it over again, it decrypts as an old
//! counter, and the library acknowledges it as a duplicate: without wagate asking the sender
//! to send it again (a retry receipt), the message is gone. The crash loop met this once in
//! 1,000 kills; here the state it leaves is made exactly, through wa-mock and wagate's redb
//! file. Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use crate::common::peer::{Rig, STEP, create_and_pair, peer, wait, wait_until};
use crate::common::{get, metric, post_json};
use redb::TableDefinition;
use serde_json::{Value, json};
use whatsapp_rust::types::events::Event;

// wagate's tables, by name: the received-message record (its WhatsApp id index, the record
// and its unread mark) and the outbox event.
const IN_WA: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("in_wa");
const IN_MSG: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("in_msg");
const IN_UNREAD: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("in_unread");
const EVENT: TableDefinition<&str, &[u8]> = TableDefinition::new("wh_event");

fn received_with(hits: &[common::receiver::Hit], wa_id: &str) -> Vec<Value> {
    hits.iter()
        .map(|h| h.json())
        .filter(|b| b["type"] == "message.received" && b["data"]["wa_id"] == wa_id)
        .map(|b| b["data"].clone())
        .collect()
}

#[test]
fn a_message_decrypted_before_a_crash_but_never_kept_is_asked_for_again() {
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        rx,
        ..
    } = Rig::start();
    let k = Some(key.as_str());
    let a = create_and_pair(&server, &mock_rt, &mock, k, "a");
    let mut customer = mock_rt.block_on(peer(&mock));
    let wagate = whatsapp_rust::Jid::pn(a.phone.as_str());

    // A first message sets up the Signal session.
    let hello = mock_rt
        .block_on(customer.client.send_text(wagate.clone(), "hello"))
        .unwrap();
    rx.wait_for("the first message", STEP, |h| {
        received_with(h, &hello.message_id).len() == 1
    });
    // Its acknowledgement (the delivery receipt) has reached WhatsApp once the customer's
    // phone hears of it.
    mock_rt.block_on(wait(
        &mut customer.events,
        "the first message's receipt",
        |e| match e {
            Event::Receipt(r) if r.message_ids.contains(&hello.message_id) => Some(()),
            _ => None,
        },
    ));

    // The second: wagate decrypts and records it, but its acknowledgement never reaches
    // WhatsApp, which keeps it to hand over again.
    mock.lose_next_ack(&a.addr());
    let text = "the order number is 42";
    let order = mock_rt
        .block_on(customer.client.send_text(wagate.clone(), text))
        .unwrap();
    let wa_id = order.message_id.clone();
    let hits = rx.wait_for("the second message", STEP, |h| {
        received_with(h, &wa_id).len() == 1
    });
    let first = received_with(&hits, &wa_id).remove(0);
    assert_eq!(first["text"], text);

    // Stopping the session saves its Signal state (past the message) and ends the link, so
    // WhatsApp queues the unacknowledged message again.
    let r = post_json(&server.url("/api/sessions/a/stop"), k, json!({}));
    assert_eq!(r.status, 200, "{}", r.text());

    // What a crash between the saved ratchet step and the message's row leaves: neither the
    // record nor the event was ever written.
    let store = server.state.store().clone();
    let (chat, msg_id, evt_id) = (
        first["chat"].as_str().unwrap().to_owned(),
        first["id"].as_str().unwrap().to_owned(),
        format!(
            "evt_{}",
            first["id"].as_str().unwrap().trim_start_matches("msg_")
        ),
    );
    let (c, w, m, e) = (chat.clone(), wa_id.clone(), msg_id.clone(), evt_id.clone());
    mock_rt
        .block_on(store.write(move |txn| {
            assert!(
                txn.open_table(IN_WA)?
                    .remove(("a", c.as_str(), w.as_str()))?
                    .is_some()
            );
            assert!(txn.open_table(IN_MSG)?.remove(("a", m.as_str()))?.is_some());
            assert!(
                txn.open_table(IN_UNREAD)?
                    .remove(("a", c.as_str(), m.as_str()))?
                    .is_some()
            );
            assert!(txn.open_table(EVENT)?.remove(e.as_str())?.is_some(), "{e}");
            Ok(())
        }))
        .unwrap();

    // Started again: WhatsApp hands the message over, it decrypts as an old counter with no
    // copy kept, and wagate asks the customer's phone for it; it comes again, as itself.
    let r = post_json(&server.url("/api/sessions/a/start"), k, json!({}));
    assert!(r.status < 300, "{}", r.text());
    let hits = rx.wait_for("the message, asked for again", STEP, |h| {
        received_with(h, &wa_id).len() == 2
    });
    let again = received_with(&hits, &wa_id).remove(1);
    assert_eq!(again["text"], text);
    assert_eq!(again["chat"], chat.as_str());
    assert_eq!(again["wa_id"], wa_id.as_str());
    let (c, w) = (chat.clone(), wa_id.clone());
    wait_until("the message's record", || {
        let (c, w) = (c.clone(), w.clone());
        mock_rt
            .block_on(store.read(move |txn| wagate::store::inbound::knows_wa_id(txn, "a", &c, &w)))
            .unwrap()
    });
    // Counted once the request has gone (whatsapp-rust also asks the account's own phone,
    // which may answer after the customer's phone already has).
    let resends = || {
        let metrics = String::from_utf8(get(&server.url("/metrics"), k).body).unwrap();
        metric(&metrics, "wagate_inbound_resend_requests_total")
    };
    wait_until("the request counted", || resends() >= 1.0);
    assert_eq!(resends(), 1.0, "asked once");
    let hits = rx.hits();
    assert_eq!(received_with(&hits, &hello.message_id).len(), 1);
    assert_eq!(received_with(&hits, &wa_id).len(), 2);
}
