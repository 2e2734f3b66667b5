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

pub mod content;
mod fields;

use std::sync::Arc;

use base64::Engine as _;
use wacore_binary::JidExt as _;
use waproto::whatsapp as wa;
use whatsapp_rust::Client;
use whatsapp_rust::types::events::InboundMessage;

use super::EngineStats;
use super::compose::{Content, Outgoing};
use crate::events::{Bus, Event, EventKind, InboundContent, MessageReceived, Notice};
use crate::store::inbound::InboundRecord;
use crate::store::{Store, inbound, outbox, queue};

/// The longest an inline media download may hold up a message's ack.
const INLINE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// A received message as written: its event and its record.
pub(crate) type Received = (Event, InboundRecord);

/// The durability hook of one session's client.
pub(crate) struct Durable {
    pub session: Arc<str>,
    pub store: Store,
    pub bus: Bus,
    pub stats: Arc<EngineStats>,
    pub media: Arc<super::media::MediaCache>,
}

#[async_trait::async_trait]
impl whatsapp_rust::InboundDurabilityHook for Durable {
    async fn on_messages(
        &self,
        client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let mut events = Vec::new();
        for m in batch.iter().filter(|m| !m.info.source.is_from_me) {
            let mut r = received_event(&self.session, m);
            complete_addresses(&client, &mut r.0).await;
            enrich(&client, &self.store, &self.media, &self.session, m, &mut r).await;
            events.push(r);
        }
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
    media: &super::media::MediaCache,
    batch: &[InboundMessage],
) {
    let mut events = Vec::new();
    for m in batch.iter().filter(|m| !m.info.source.is_from_me) {
        let mut e = received_event(session, m);
        complete_addresses(client, &mut e.0).await;
        enrich(client, store, media, session, m, &mut e).await;
        events.push(e);
    }
    if events.is_empty() {
        return;
    }
    let ids: Vec<String> = events.iter().map(|e| e.0.id.clone()).collect();
    let known = store
        .read(move |t| {
            ids.iter()
                .map(|id| outbox::has_event(t, id))
                .collect::<Result<Vec<bool>, _>>()
        })
        .await;
    let missing: Vec<Received> = match known {
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
    events: Vec<Received>,
) -> Result<(), crate::store::StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let written = store
        .write(move |t| {
            let mut out = Vec::new();
            for (e, rec) in events.iter().cloned() {
                let session = e.session.clone();
                if let Some(e) = outbox::record(t, e)? {
                    inbound::put(t, &session, &rec)?;
                    if let EventKind::MessageReceived(m) = &e.kind {
                        mark_target(t, &session, m)?;
                    }
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

/// An edit or a revoke marks the received message it names: edited with its new text, or
/// revoked. Only the message's own sender's changes count (a group admin's delete of
/// someone else's message still arrives as `message.received` kind `revoke`, but wagate
/// cannot tell an admin from any member here, so it marks nothing). The target may have come
/// in the same batch (after a time offline): it is then found by its WhatsApp id here.
fn mark_target(
    t: &redb::WriteTransaction,
    session: &str,
    m: &MessageReceived,
) -> Result<(), crate::store::StoreError> {
    let (target, edit) = match &*m.content {
        InboundContent::Edit { target } => (target, Some(m.text.as_deref().unwrap_or_default())),
        InboundContent::Revoke { target } => (target, None),
        _ => return Ok(()),
    };
    if target.from_me {
        return Ok(());
    }
    let rec = match target.id.as_deref() {
        Some(id) => inbound::get_w(t, session, id)?,
        None => inbound::by_wa_id_w(t, session, &m.chat, &target.wa_id)?,
    };
    let Some(rec) = rec else {
        return Ok(());
    };
    let by_sender = [Some(&m.from), m.from_phone.as_ref(), m.from_lid.as_ref()]
        .into_iter()
        .flatten()
        .any(|j| *j == rec.sender);
    if by_sender {
        inbound::mark_changed(t, session, &rec.id, edit, m.sent_at)?;
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

/// The `message.received` event of an inbound message, with its derived ids, and the record
/// the store keeps of it.
pub(crate) fn received_event(session: &str, m: &InboundMessage) -> Received {
    let data = message_received(session, m);
    let ulid = data.id.trim_start_matches("msg_").to_string();
    let base = {
        use whatsapp_rust::prelude::MessageExt;
        m.message.get_base_message()
    };
    let keep_proto =
        data.content.media().is_some() || matches!(*data.content, InboundContent::Poll { .. });
    let rec = InboundRecord {
        id: data.id.clone(),
        chat: data.chat.clone(),
        sender: data.from.clone(),
        wa_id: data.wa_id.clone(),
        kind: data.content.name().to_string(),
        sent_at: data.sent_at,
        mimetype: data.content.media().and_then(|x| x.mimetype.clone()),
        file_name: data.content.media().and_then(|x| x.file_name.clone()),
        size: data.content.media().and_then(|x| x.size),
        proto: keep_proto.then(|| {
            let mut keep = base.clone();
            // A poll's secret travels beside it; keep it with the poll.
            if keep.message_context_info.as_option().is_none()
                && let Some(ci) = m.message.message_context_info.as_option()
            {
                keep.message_context_info = waproto::buffa::MessageField::some(ci.clone());
            }
            base64::engine::general_purpose::STANDARD.encode(waproto::codec::message_to_vec(&keep))
        }),
        text: (!keep_proto).then(|| data.text.clone()).flatten(),
        ..Default::default()
    };
    let mut e = Event::new(session, EventKind::MessageReceived(Box::new(data)));
    e.id = format!("evt_{ulid}");
    (e, rec)
}

/// The device URL of a received message's media.
pub fn media_url(session: &str, id: &str) -> String {
    format!("/api/sessions/{session}/messages/{id}/media")
}

fn message_received(session: &str, m: &InboundMessage) -> MessageReceived {
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
    let id = format!("msg_{ulid}");
    let mapped = content::map(&m.message, &media_url(session, &id));
    MessageReceived {
        id,
        wa_id: m.info.id.to_string(),
        group: src.chat.is_group().then(|| chat.clone()),
        chat,
        from,
        from_phone: phone,
        from_lid: lid,
        push_name: (!m.info.push_name.is_empty()).then(|| m.info.push_name.clone()),
        sent_at,
        text: mapped.text,
        reply_to: mapped.reply_to,
        mentions: mapped.mentions,
        content: Box::new(mapped.content),
    }
}

/// What the mapping cannot do alone: decrypt a poll vote (the poll's secret is in the store
/// or the client's), and embed small media when `inline_media_max_bytes` asks for it.
async fn enrich(
    client: &Client,
    store: &Store,
    media: &super::media::MediaCache,
    session: &str,
    m: &InboundMessage,
    (e, rec): &mut Received,
) {
    let EventKind::MessageReceived(data) = &mut e.kind else {
        return;
    };
    let me: Vec<String> = [client.pn(), client.lid()]
        .into_iter()
        .flatten()
        .map(|j| j.user.to_string())
        .collect();
    let group = m.info.source.chat.is_group();
    if let Some(target) = data.content.target_mut() {
        content::orient(target, &me, group, true);
    }
    if let Some(quoted) = data.reply_to.as_mut() {
        content::orient(quoted, &me, group, false);
    }
    if let InboundContent::PollVote {
        poll,
        options,
        error,
    } = &mut *data.content
    {
        match decrypt_vote(client, store, session, m, poll).await {
            Ok(names) => *options = Some(names),
            Err(why) => *error = Some(why),
        }
    }
    name_references(store, session, data).await;
    let limit = media.inline_max_bytes();
    if limit > 0
        && let Some(md) = data.content.media_mut()
        && md.size.is_some_and(|s| s <= limit)
    {
        // This runs before the write, so before WhatsApp's ack: bounded in size (config) and
        // in time; a download that fails or takes too long leaves `inline` out, not the event.
        let fetch = media.download_small(client, rec, limit);
        match tokio::time::timeout(INLINE_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| Err(super::media::MediaError::Other("timed out".into())))
        {
            Ok(bytes) => {
                md.inline = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
            }
            Err(err) => {
                tracing::warn!(session, id = %rec.id, error = %err, "inline media not embedded")
            }
        }
    }
}

/// Give the messages a received message refers to (its target, its quote) wagate's ids:
/// one this session sent is found among the sent ones, any other among the received ones of
/// the chat. A reference to a message wagate does not know keeps only its WhatsApp id.
async fn name_references(store: &Store, session: &str, data: &mut MessageReceived) {
    let wanted: Vec<(bool, String)> = data
        .content
        .target_mut()
        .into_iter()
        .chain(data.reply_to.as_mut())
        .map(|r| (r.from_me, r.wa_id.clone()))
        .collect();
    if wanted.iter().all(|(_, w)| w.is_empty()) {
        return;
    }
    let (sid, chat) = (session.to_string(), data.chat.clone());
    let found = store
        .read(move |t| {
            wanted
                .iter()
                .map(|(ours, w)| {
                    if w.is_empty() {
                        Ok(None)
                    } else if *ours {
                        Ok(queue::by_wa_id(t, &sid, w)?.map(|r| r.id))
                    } else {
                        Ok(inbound::by_wa_id(t, &sid, &chat, w)?.map(|r| r.id))
                    }
                })
                .collect::<Result<Vec<Option<String>>, crate::store::StoreError>>()
        })
        .await;
    match found {
        Ok(ids) => {
            let refs = data
                .content
                .target_mut()
                .into_iter()
                .chain(data.reply_to.as_mut());
            for (r, id) in refs.zip(ids) {
                r.id = id;
            }
        }
        Err(e) => tracing::warn!(session, error = %e, "cannot name the referenced messages"),
    }
}

/// The message a received record kept (`proto`, written by [`received_event`]), decoded.
/// `None` when it kept none (or the stored text is not base64); `Some(Err)` when the bytes
/// do not decode as a message.
pub(crate) fn kept_message(rec: &InboundRecord) -> Option<Result<wa::Message, String>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rec.proto.as_deref()?)
        .ok()?;
    Some(waproto::codec::message_decode(&bytes).map_err(|e| e.to_string()))
}

/// The option names a poll vote chose.
async fn decrypt_vote(
    client: &Client,
    store: &Store,
    session: &str,
    m: &InboundMessage,
    poll: &mut crate::events::MessageRef,
) -> Result<Vec<String>, String> {
    use whatsapp_rust::prelude::MessageExt;
    let base = m.message.get_base_message();
    let Some(update) = base.poll_update_message.as_option() else {
        return Err("not a poll vote".into());
    };
    let Some(vote) = update.vote.as_option() else {
        return Err("the vote carries no payload".into());
    };
    let src = &m.info.source;
    let chat = jid_string(&src.chat);
    // `from_me` is this session's point of view here (see `content::orient`).
    let creator: whatsapp_rust::Jid = if let Some(p) = &poll.participant {
        p.parse().map_err(|_| format!("bad poll creator '{p}'"))?
    } else if poll.from_me {
        client.pn().ok_or("not logged in")?.to_non_ad()
    } else {
        src.sender.to_non_ad()
    };
    poll.participant.get_or_insert_with(|| creator.to_string());
    let (sid, c, w) = (session.to_string(), chat.clone(), poll.wa_id.clone());
    let found = store
        .read(move |t| {
            if let Some(r) = inbound::by_wa_id(t, &sid, &c, &w)? {
                return Ok(Some(PollSource::Received(r)));
            }
            Ok(queue::by_wa_id(t, &sid, &w)?.map(PollSource::Sent))
        })
        .await
        .map_err(|e| e.to_string())?;
    let (options, secret) = match found {
        Some(PollSource::Received(r)) => received_poll(r)?,
        Some(PollSource::Sent(r)) => sent_poll(r)?,
        None => return Err("the poll is unknown to this session".into()),
    };
    let secret = match secret {
        Some(s) => s,
        None => client
            .persistence_manager()
            .backend()
            .get_msg_secret(&chat, &creator.to_string(), &poll.wa_id)
            .await
            .ok()
            .flatten()
            .ok_or("the poll's secret is unknown")?,
    };
    let hashes = client
        .polls()
        .decrypt_vote(
            whatsapp_rust::features::PollVoteCiphertext {
                enc_payload: vote.enc_payload.as_deref().unwrap_or_default(),
                enc_iv: vote.enc_iv.as_deref().unwrap_or_default(),
            },
            &secret,
            &poll.wa_id,
            &creator,
            &src.sender,
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(hashes
        .iter()
        .map(|h| {
            options
                .iter()
                .find(|o| wacore::poll::compute_option_hash(o).as_slice() == h.as_slice())
                .cloned()
                .unwrap_or_else(|| content::hex(h))
        })
        .collect())
}

/// Where the poll a vote names was found: among the messages received, or the ones sent.
enum PollSource {
    Received(InboundRecord),
    Sent(crate::store::queue::MessageRecord),
}

/// A received poll's options and, when it carried one, its secret.
fn received_poll(r: InboundRecord) -> Result<(Vec<String>, Option<Vec<u8>>), String> {
    let poll_msg: wa::Message = kept_message(&r)
        .and_then(Result::ok)
        .ok_or("the poll is unknown to this session")?;
    let secret = poll_msg
        .message_context_info
        .as_option()
        .and_then(|c| c.message_secret.clone());
    let InboundContent::Poll { options, .. } = content::map(&poll_msg, "").content else {
        return Err("the referenced message is not a poll".into());
    };
    Ok((options, secret))
}

/// A poll this session sent: its options from the queued content, its secret as the sender
/// fixed it (none for a poll sent before secrets were kept: then the client's store).
fn sent_poll(
    r: crate::store::queue::MessageRecord,
) -> Result<(Vec<String>, Option<Vec<u8>>), String> {
    let Ok(Outgoing {
        content: Content::Poll { options, .. },
        ..
    }) = serde_json::from_value::<Outgoing>(r.content)
    else {
        return Err("the referenced message is not a poll".into());
    };
    let secret = r
        .secret
        .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok());
    Ok((options, secret))
}
