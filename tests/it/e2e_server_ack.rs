//! `sent` means WhatsApp's server has the message: wagate records it when the server
//! acknowledges the message's id, not when the stanza was written to a socket. Through
//! wa-mock, which can lose a client's next message (read and dropped, no ack, as a stanza
//! still in a send buffer is lost when the power or the link goes) or refuse it (a nack with
//! an error code). Needs `--features trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::time::Duration;

use crate::common::peer::{Peer, create_and_pair, mock_options, peer, wait, wait_until};
use crate::common::{Server, get, post_json};
use serde_json::json;
use tokio::runtime::Runtime;
use wa_mock::{Direction, MessageFault, MockConfig, MockServer, StanzaFilter};
use whatsapp_rust::types::events::Event;

/// The text and WhatsApp id of the next message the peer decrypts.
async fn next_text(peer: &mut Peer) -> (String, String) {
    wait(&mut peer.events, "a message at the peer", |e| match e {
        Event::Messages(batch) => batch
            .messages
            .iter()
            .find(|m| !m.info.source.is_from_me)
            .map(|m| {
                let text = m.message.conversation.clone().unwrap_or_default();
                (text, m.info.id.to_string())
            }),
        _ => None,
    })
    .await
}

#[test]
fn a_message_is_sent_only_once_the_server_acknowledges_it() {
    let mock_rt = Runtime::new().unwrap();
    let mock = mock_rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let server = Server::start(mock_options(&mock));
    let key = server.admin();
    let k = Some(key.as_str());
    let gate = create_and_pair(&server, &mock_rt, &mock, k, "a");
    let mut b = mock_rt.block_on(peer(&mock));
    let to = b.jid.clone();
    let send = |text: &str| -> String {
        let r = post_json(
            &server.url("/api/sessions/a/messages/text"),
            k,
            json!({"to": to, "text": text}),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()["id"].as_str().unwrap().to_string()
    };
    let record = |id: &str| get(&server.url(&format!("/api/sessions/a/messages/{id}")), k).json();
    let from_gate = || {
        mock.stanzas(&StanzaFilter {
            tag: Some("message".into()),
            direction: Some(Direction::In),
            device: Some(gate.jid.clone()),
            ..StanzaFilter::default()
        })
        .len()
    };

    // Lost on the way: written to the socket, never taken by the server. Not `sent`.
    mock.fault_next_message(Some(&gate.phone), MessageFault::Swallow);
    let before = from_gate();
    let lost = send("lost on the way");
    wait_until("the stanza at wa-mock", || from_gate() > before);
    std::thread::sleep(Duration::from_millis(800));
    let r = record(&lost);
    // The API shows a message under way as `queued`, with the id it goes by.
    assert_eq!(r["status"], "queued", "no ack yet, so not sent: {r}");
    assert!(r["sent_at"].is_null(), "{r}");
    let wa_id = r["wa_id"].as_str().unwrap().to_string();

    // The link drops; after the reconnect it goes again with the same id, and arrives once.
    assert!(mock.drop_connection(&gate.addr()));
    let (text, id) = mock_rt.block_on(next_text(&mut b));
    assert_eq!(
        (text.as_str(), id.as_str()),
        ("lost on the way", wa_id.as_str())
    );
    wait_until("the lost message sent", || {
        ["sent", "delivered", "read"].contains(&record(&lost)["status"].as_str().unwrap_or(""))
    });
    assert_eq!(record(&lost)["wa_id"], wa_id.as_str());

    // Refused with a client error: failed with the server's code, nothing arrives.
    mock.fault_next_message(Some(&gate.phone), MessageFault::Refuse { code: 479 });
    let refused = send("refused");
    wait_until("the refused message failed", || {
        record(&refused)["status"] == "failed"
    });
    let r = record(&refused);
    assert!(
        r["reason"].as_str().unwrap_or("").contains("479"),
        "the reason names the server's code: {r}"
    );

    // Refused as unavailable (5xx): tried again, and then it arrives.
    mock.fault_next_message(Some(&gate.phone), MessageFault::Refuse { code: 503 });
    let busy = send("server busy");
    let (text, _) = mock_rt.block_on(next_text(&mut b));
    assert_eq!(text, "server busy", "the refused one never arrived");
    wait_until("the retried message sent", || {
        ["sent", "delivered", "read"].contains(&record(&busy)["status"].as_str().unwrap_or(""))
    });
    assert_eq!(record(&busy)["attempts"], 2);
}
