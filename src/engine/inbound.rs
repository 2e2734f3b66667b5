//! Inbound messages: written to the webhook outbox before WhatsApp is acknowledged.
//!
//! whatsapp-rust defers the transport ack of a decrypted message until its inbound
//! durability hook returns `Ok`. [`Durable`] is that hook: it writes one `message.received`
//! event per message in one redb transaction and only then lets the ack go. A crash before
//! the commit leaves the message unacknowledged and the server hands it over again; a crash
//! after the commit but before the ack hands over a message already written, which
//! [`outbox::record`] recognizes by the event id derived from (session, chat, sender,
//! WhatsApp id): at-least-once from WhatsApp, one event here.
//!
//! Messages the library does not pass through the hook (newsletter posts, placeholder
//! recoveries) reach the session task as ordinary events; [`record_missing`] writes those the
//! same way, and skips the ones the hook already wrote.

use std::sync::Arc;

use whatsapp_rust::Client;
use whatsapp_rust::types::events::InboundMessage;

use super::EngineStats;
use crate::events::{Bus, Event, EventKind, MessageReceived, Notice};
use crate::store::{Store, outbox};

/// The durability hook of one session's client.
pub(crate) struct Durable {
    pub session: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub stats: Arc<EngineStats>,
}

#[async_trait::async_trait]
impl whatsapp_rust::InboundDurabilityHook for Durable {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let events: Vec<Event> = batch
            .iter()
            .filter(|m| !m.info.source.is_from_me)
            .map(|m| received_event(&self.session, m))
            .collect();
        write(&self.store, &self.bus, &self.stats, events).await?;
        Ok(())
    }
}

/// Write the events of messages that are not in the outbox yet (the hook did not see them).
pub(crate) async fn record_missing(
    session: &str,
    client: &Client,
    store: &Store,
    bus: &Bus,
    stats: &EngineStats,
    batch: &[InboundMessage],
) {
    let mut events = Vec::new();
    for m in batch.iter().filter(|m| !m.info.source.is_from_me) {
        let mut e = received_event(session, m);
        complete_addresses(client, &mut e).await;
        events.push(e);
    }
    if events.is_empty() {
        return;
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let known = store
        .read(move |t| {
            ids.iter()
                .map(|id| outbox::has_event(t, id))
                .collect::<Result<Vec<bool>, _>>()
        })
        .await;
    let missing: Vec<Event> = match known {
        Ok(known) => events
            .into_iter()
            .zip(known)
            .filter(|(_, k)| !k)
            .map(|(e, _)| e)
            .collect(),
        Err(e) => {
            tracing::error!(session, error = %e, "cannot check inbound messages");
            return;
        }
    };
    if missing.is_empty() {
        return;
    }
    if let Err(e) = write(store, bus, stats, missing).await {
        tracing::error!(session, error = %e, "cannot record inbound messages");
    }
}

/// One transaction for the batch; publish what was new.
async fn write(
    store: &Store,
    bus: &Bus,
    stats: &EngineStats,
    events: Vec<Event>,
) -> Result<(), crate::store::StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let written = store
        .write(move |t| {
            let mut out = Vec::new();
            for e in events {
                if let Some(e) = outbox::record(t, e)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await?;
    for e in written {
        EngineStats::bump(&stats.received);
        bus.publish(Notice::Event(e));
    }
    Ok(())
}

/// Fill in the sender's phone number or LID from the client's mapping when the stanza named
/// only one of them.
async fn complete_addresses(client: &Client, e: &mut Event) {
    let EventKind::MessageReceived(m) = &mut e.kind else {
        return;
    };
    if m.from_phone.is_some() && m.from_lid.is_some() {
        return;
    }
    let Ok(jid) = m.from.parse::<whatsapp_rust::Jid>() else {
        return;
    };
    if let Ok(Some(entry)) = client.get_lid_pn_entry(&jid).await {
        m.from_lid
            .get_or_insert_with(|| format!("{}@lid", entry.lid));
        m.from_phone
            .get_or_insert_with(|| format!("{}@s.whatsapp.net", entry.phone_number));
    }
}

fn jid_string(j: &whatsapp_rust::Jid) -> String {
    j.to_non_ad().to_string()
}

/// The `message.received` event of an inbound message, with its derived ids.
pub(crate) fn received_event(session: &str, m: &InboundMessage) -> Event {
    let data = message_received(session, m);
    let ulid = data.id.trim_start_matches("msg_").to_string();
    let mut e = Event::new(session, EventKind::MessageReceived(data));
    e.id = format!("evt_{ulid}");
    e
}

fn message_received(session: &str, m: &InboundMessage) -> MessageReceived {
    use whatsapp_rust::prelude::MessageExt;
    let src = &m.info.source;
    let (mut phone, mut lid) = (None, None);
    for j in [Some(&src.sender), src.sender_alt.as_ref()]
        .into_iter()
        .flatten()
    {
        if j.is_lid() {
            lid.get_or_insert_with(|| jid_string(j));
        } else if j.is_pn() {
            phone.get_or_insert_with(|| jid_string(j));
        }
    }
    let chat = jid_string(&src.chat);
    let from = jid_string(&src.sender);
    let sent_at = m.info.timestamp.timestamp_millis();
    let ulid = outbox::inbound_ulid(session, &chat, &from, &m.info.id, sent_at);
    MessageReceived {
        id: format!("msg_{ulid}"),
        wa_id: m.info.id.to_string(),
        chat,
        from,
        from_phone: phone,
        from_lid: lid,
        push_name: (!m.info.push_name.is_empty()).then(|| m.info.push_name.clone()),
        sent_at,
        text: m.message.text_content().map(str::to_string),
    }
}
