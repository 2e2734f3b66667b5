//! A message wagate sends reaches WhatsApp only on Signal state that is already in redb.
//!
//! When wagate decrypts a customer's answer that starts a new ratchet step, whatsapp-rust
//! makes a new sending chain for that customer and saves it some 25 ms later. An answer sent
//! straight back went out on the unsaved chain: a power cut then left redb a step behind what
//! the customer had seen, and the two sides could no longer read each other (README,
//! "Crashes"). wagate's wire gate holds such a frame until the state is written.
//!
//! Here a customer and wagate exchange messages as fast as they can, wagate answering each
//! message the moment its event arrives. wa-mock's tap looks, as each of wagate's messages
//! arrives and before the server acts on it, at the ratchet key the message was encrypted
//! with, and at the sending chain redb holds for that customer: they must be the same.
//! Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use crate::common;

use std::sync::{Arc, Mutex};

use crate::common::peer::{Rig, peer, wait};
use crate::common::{Sse, post_json, signal};
use redb::TableDefinition;
use serde_json::json;
use whatsapp_rust::types::events::Event;
use whatsapp_rust::wacore::libsignal::protocol::SessionRecord;

/// wagate's table of Signal sessions: (session id, Signal address) → record.
const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("wa_sessions");

/// What the tap saw for one of wagate's messages to the customer.
struct Seen {
    id: String,
    /// The ratchet key the message was encrypted with equals the sending chain in redb.
    stored: bool,
}

#[test]
fn every_message_to_a_customer_leaves_on_signal_state_already_in_redb() {
    const ROUNDS: usize = 12;
    let Rig {
        mock_rt,
        mock,
        server,
        key,
        ..
    } = Rig::tuned(|o| {
        if let Some(engine) = o.engine.as_mut() {
            // Answer at once: no random delay, the shortest typing.
            engine.pacing.min_delay_ms = 0;
            engine.pacing.max_delay_ms = 0;
            engine.pacing.typing_max_ms = 1;
        }
    });
    let k = Some(key.as_str());
    let a = common::peer::create_and_pair(&server, &mock_rt, &mock, k, "a");
    let mut customer = mock_rt.block_on(peer(&mock));

    // The tap: for each of wagate's messages to the customer, compare the key it was
    // encrypted with to the sending chain of the customer's session in redb, then and there.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    {
        let seen = Arc::clone(&seen);
        let store = server.state.store().clone();
        let (wagate, phone, lid) = (
            a.phone.clone(),
            customer.phone.clone(),
            customer.lid.clone(),
        );
        let is_customer = move |jid: &str| signal::is_user(jid, &[&phone, &lid]);
        mock.tap(move |rec| {
            let from_wagate = rec
                .device
                .as_deref()
                .is_some_and(|d| d.starts_with(wagate.as_str()));
            if rec.tag != "message" || !from_wagate {
                return;
            }
            let node = &rec.node;
            let Some(sent) = signal::encs_to(node, &is_customer)
                .into_iter()
                .find_map(signal::chain_step)
            else {
                return;
            };
            let stored = store
                .read_blocking(|txn| {
                    let mut keys = Vec::new();
                    for row in txn.open_table(SESSIONS)?.range(("a", "")..("b", ""))? {
                        let (k, v) = row?;
                        if !is_customer(k.value().1) {
                            continue;
                        }
                        let current = SessionRecord::deserialize(v.value())
                            .ok()
                            .and_then(|r| r.session_state()?.sender_ratchet_key().ok())
                            .map(|key| key.serialize().to_vec());
                        keys.extend(current);
                    }
                    Ok(keys)
                })
                .unwrap_or_default();
            let id = node
                .attrs
                .get("id")
                .map(|v| v.as_str().into_owned())
                .unwrap_or_default();
            seen.lock().unwrap().push(Seen {
                id,
                stored: stored.contains(&sent.chain),
            });
        });
    }

    // Ping-pong: the customer writes, wagate answers the moment the event arrives; the
    // customer's next message answers wagate's, so every round is a new ratchet step.
    let mut events = Sse::open(&server.url("/api/events?session=a"), &key);
    let wagate_jid = whatsapp_rust::Jid::pn(a.phone.as_str());
    for round in 0..ROUNDS {
        let ask = format!("question {round}");
        mock_rt
            .block_on(customer.client.send_text(wagate_jid.clone(), &ask))
            .unwrap();
        events.until(&ask, |e| {
            e.event == "message.received" && e.data["data"]["text"] == ask.as_str()
        });
        let answer = format!("answer {round}");
        let r = post_json(
            &server.url("/api/sessions/a/messages/text"),
            k,
            json!({"to": customer.phone, "text": answer}),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        mock_rt.block_on(wait(&mut customer.events, &answer, |e| match e {
            Event::Messages(batch) => batch
                .messages
                .iter()
                .any(|m| m.message.conversation.as_deref() == Some(answer.as_str()))
                .then_some(()),
            _ => None,
        }));
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.len() >= ROUNDS,
        "the tap saw {} of wagate's {ROUNDS} answers",
        seen.len()
    );
    let unsaved: Vec<&str> = seen
        .iter()
        .filter(|s| !s.stored)
        .map(|s| s.id.as_str())
        .collect();
    assert!(
        unsaved.is_empty(),
        "{} of {} messages left on a sending chain redb did not hold yet: {unsaved:?}",
        unsaved.len(),
        seen.len()
    );
    // The holds are counted on /metrics: some, all ended by the write, none by the bound.
    let metrics = String::from_utf8(common::get(&server.url("/metrics"), k).body).unwrap();
    let sample = |name: &str| common::metric(&metrics, name);
    let saved = sample("wagate_wire_holds_total{outcome=\"saved\"}");
    assert!(saved >= 1.0, "no frame was held for the Signal state");
    assert_eq!(
        sample("wagate_wire_holds_total{outcome=\"timed_out\"}"),
        0.0,
        "a frame gave up waiting ({saved} held)"
    );
    let held = sample("wagate_wire_hold_seconds_total");
    assert!(held > 0.0);
    eprintln!(
        "{} messages, {saved} frames held, {:.1} ms on average",
        seen.len(),
        held * 1e3 / saved
    );
}
