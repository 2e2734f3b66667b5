//! Two real clients exchange an end-to-end encrypted text through the mock:
//! delivery and read receipts come back, and a message for an offline device
//! is queued until it connects; a message whose ack is lost is delivered again.

use std::sync::Arc;

use crate::common::*;
use wa_mock::{Direction, MockServer, StanzaFilter};
use wacore::store::InMemoryBackend;
use wacore::types::presence::ReceiptType;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::Event;

fn text_of(e: &Event) -> Option<(String, String, Jid)> {
    match e {
        Event::Messages(batch) => batch.messages.iter().find_map(|m| {
            m.message
                .conversation
                .clone()
                .map(|t| (t, m.info.id.to_string(), m.info.source.sender.clone()))
        }),
        _ => None,
    }
}

fn receipt_of(e: &Event, kinds: &[ReceiptType]) -> Option<Vec<String>> {
    match e {
        Event::Receipt(r) if kinds.contains(&r.r#type) => {
            Some(r.message_ids.iter().map(|i| i.to_string()).collect())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_delivery_and_read_receipts_and_offline_queue() {
    let mock = mock().await;
    let (a_backend, b_backend) = (
        Arc::new(InMemoryBackend::new()),
        Arc::new(InMemoryBackend::new()),
    );
    let ((mut a, a_info), (mut b, b_info)) = tokio::join!(
        paired_client(&mock, a_backend.clone()),
        paired_client(&mock, b_backend.clone())
    );

    // A -> B, live.
    let to: Jid = b_info.user_jid().parse().unwrap();
    let sent = a
        .client
        .send_text(to.clone(), "hello from A")
        .await
        .expect("send");
    let (text, id, sender) = b.wait(STEP, "B receives the text", text_of).await;
    assert_eq!(text, "hello from A");
    assert_eq!(id, sent.message_id);
    assert_eq!(sender.user, a_info.phone);

    let delivered = a
        .wait(STEP, "A gets a delivery receipt", |e| {
            // A device without presence "available" acks with type="inactive".
            receipt_of(e, &[ReceiptType::Delivered, ReceiptType::Inactive])
        })
        .await;
    assert!(delivered.contains(&sent.message_id));

    // B reads it -> A sees read.
    let chat: Jid = a_info.user_jid().parse().unwrap();
    b.client
        .mark_as_read(&chat, Some(&sender), &[id.as_str()])
        .await
        .expect("mark read");
    let read = a
        .wait(STEP, "A gets a read receipt", |e| {
            receipt_of(e, &[ReceiptType::Read])
        })
        .await;
    assert!(read.contains(&sent.message_id));

    // B goes offline; A sends; B gets it when it comes back.
    b.stop().await;
    mock.wait_until(STEP, "B offline", |m| !m.is_online(&b_info.addr()))
        .await
        .unwrap();
    let sent2 = a
        .client
        .send_text(to.clone(), "while you were away")
        .await
        .expect("send 2");
    mock.wait_until(STEP, "queued for B", |m| {
        m.accounts()
            .iter()
            .flat_map(|acc| acc.devices.iter())
            .any(|d| d.jid == b_info.jid && d.queued > 0)
    })
    .await
    .unwrap();
    let mut b2 = start_client(&mock, b_backend.clone()).await;
    let (text2, id2, _) = b2.wait(STEP, "B receives the queued text", text_of).await;
    assert_eq!(text2, "while you were away");
    assert_eq!(id2, sent2.message_id);
    let unacked = |m: &MockServer| {
        m.accounts()
            .iter()
            .flat_map(|acc| acc.devices.iter())
            .find(|d| d.jid == b_info.jid)
            .map_or(usize::MAX, |d| d.unacked)
    };
    mock.wait_until(STEP, "B acked what it got", |m| unacked(m) == 0)
        .await
        .unwrap();

    // An ack lost on the way (the link dropped under it): the server keeps the message and
    // delivers it again on B's next connection; B acks the copy.
    mock.lose_next_ack(&b_info.addr());
    let sent3 = a
        .client
        .send_text(to.clone(), "ack me twice")
        .await
        .expect("send 3");
    let (text3, _, _) = b2.wait(STEP, "B receives the third text", text_of).await;
    assert_eq!(text3, "ack me twice");
    // B's receipt went through to A (so the server has seen it), yet the message is unacked.
    let delivered3 = a
        .wait(STEP, "A gets the third delivery receipt", |e| {
            receipt_of(e, &[ReceiptType::Delivered, ReceiptType::Inactive])
                .filter(|ids| ids.contains(&sent3.message_id))
        })
        .await;
    assert!(delivered3.contains(&sent3.message_id));
    mock.wait_until(STEP, "its ack lost", |m| unacked(m) == 1)
        .await
        .unwrap();
    assert!(mock.drop_connection(&b_info.addr()));
    let to_b = |m: &MockServer| {
        m.stanzas(&StanzaFilter {
            tag: Some("message".into()),
            direction: Some(Direction::Out),
            ..StanzaFilter::default()
        })
        .iter()
        .filter(|r| r.xml.contains(&format!("id=\"{}\"", sent3.message_id)))
        .filter(|r| r.device.as_deref() == Some(b_info.jid.as_str()))
        .count()
    };
    mock.wait_until(STEP, "delivered again and acked", |m| {
        to_b(m) == 2 && unacked(m) == 0 && m.is_online(&b_info.addr())
    })
    .await
    .unwrap();

    a.stop().await;
    b2.stop().await;
    mock.shutdown().await;
}
