//! Replies and mentions at send time: the `reply_to` of a queued message is resolved to the
//! quoted message's WhatsApp id, author and content, and turned (with `mentions`) into the
//! message's context info ([`compose::with_context`]).
//!
//! An id is looked up in this session's queue first, as a wagate id and then as a WhatsApp
//! id: a message the session sent is quoted with its own content and the session as its
//! author (by LID in a LID-addressed group, else by phone-number JID). A wagate id of a
//! message the session received (the `id` of its `message.received`) is quoted with its
//! WhatsApp id, its sender as the author and its content as received (its text, or the kept
//! media or poll message). Any other id is taken as WhatsApp's id of a received message,
//! quoted with the request's `reply_to_participant` (in a chat with one person, that person
//! when absent) and `reply_to_text`.

use wacore_binary::JidExt as _;
use waproto::whatsapp as wa;
use whatsapp_rust::Client;

use super::compose::{self, Outgoing};
use crate::store::Store;
use crate::store::inbound::{self, InboundRecord};
use crate::store::queue::{self, MessageStatus};

/// Why a reply cannot be sent as asked; the message fails with this reason.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("reply_to '{id}' is a message that was not sent ({status})")]
    NotSent { id: String, status: String },
    #[error("reply_to '{id}' is a message sent to another chat ({chat})")]
    OtherChat { id: String, chat: String },
    #[error(
        "reply_to '{0}' is not a message this session sent; in a group, name its author in reply_to_participant"
    )]
    NoParticipant(String),
    #[error("the session's own JID is not known yet")]
    NoOwnJid,
    #[error("cannot read the queue: {0}")]
    Store(String),
}

impl ReplyError {
    /// Worth another attempt (the store hiccuped), rather than failing the message.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReplyError::Store(_) | ReplyError::NoOwnJid)
    }
}

/// `message` (built from `out`) with the context info of its reply and mentions, if any.
pub(crate) async fn apply(
    store: &Store,
    session: &str,
    client: &Client,
    out: &Outgoing,
    message: wa::Message,
) -> Result<wa::Message, ReplyError> {
    Ok(match context(store, session, client, out).await? {
        Some(ctx) => compose::with_context(message, ctx),
        None => message,
    })
}

/// The session's own JID as the author of a quote in `chat`: its LID in a LID-addressed
/// group, its phone-number JID elsewhere.
async fn own_jid(client: &Client, chat: &compose::Recipient) -> Result<String, ReplyError> {
    let pn = client.pn().ok_or(ReplyError::NoOwnJid)?.to_non_ad();
    if chat.is_group()
        && let Ok(jid) = chat.as_str().parse::<whatsapp_rust::Jid>()
        && let Ok(info) = client.groups().query_info(&jid).await
        && info.addressing_mode == wacore::types::message::AddressingMode::Lid
        && let Some(lid) = client.lid()
    {
        return Ok(lid.to_non_ad().to_string());
    }
    Ok(pn.to_string())
}

/// The context info `out` needs, or `None` when it neither replies nor mentions.
pub(crate) async fn context(
    store: &Store,
    session: &str,
    client: &Client,
    out: &Outgoing,
) -> Result<Option<wa::ContextInfo>, ReplyError> {
    let Some(reply) = &out.reply_to else {
        return Ok((!out.mentions.is_empty())
            .then(|| compose::context_info(None, None, None, &out.mentions)));
    };
    let (sid, id) = (session.to_string(), reply.message_id.clone());
    let found = store
        .read(move |t| {
            if let Some(rec) = queue::get(t, &sid, &id)? {
                return Ok(Some(Quoted::Sent(rec)));
            }
            if let Some(rec) = queue::by_wa_id(t, &sid, &id)? {
                return Ok(Some(Quoted::Sent(rec)));
            }
            Ok(inbound::get(t, &sid, &id)?.map(Quoted::Received))
        })
        .await
        .map_err(|e| ReplyError::Store(e.to_string()))?;
    let chat = out.to.as_str();
    let ctx = match found {
        Some(Quoted::Received(rec)) => {
            if !same_chat(client, &rec.chat, &out.to).await {
                return Err(ReplyError::OtherChat {
                    id: reply.message_id.clone(),
                    chat: rec.chat,
                });
            }
            let quoted = received_content(&rec).or_else(|| text_message(reply.text.as_ref()));
            compose::context_info(Some(&rec.wa_id), Some(&rec.sender), quoted, &out.mentions)
        }
        Some(Quoted::Sent(rec)) => {
            let sent = matches!(
                rec.status,
                MessageStatus::Sent | MessageStatus::Delivered | MessageStatus::Read
            );
            let wa_id = match (&rec.wa_id, sent) {
                (Some(w), true) => w.clone(),
                _ => {
                    return Err(ReplyError::NotSent {
                        id: reply.message_id.clone(),
                        status: serde_json::to_value(rec.status)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                    });
                }
            };
            if rec.to != chat {
                return Err(ReplyError::OtherChat {
                    id: reply.message_id.clone(),
                    chat: rec.to,
                });
            }
            let me = own_jid(client, &out.to).await?;
            let quoted = serde_json::from_value::<Outgoing>(rec.content)
                .ok()
                .and_then(|o| compose::quoted_content(&o.content));
            compose::context_info(Some(&wa_id), Some(&me), quoted, &out.mentions)
        }
        None => {
            let participant = match (&reply.participant, out.to.is_group()) {
                (Some(p), _) => p.clone(),
                (None, false) => chat.to_string(),
                (None, true) => return Err(ReplyError::NoParticipant(reply.message_id.clone())),
            };
            let quoted = text_message(reply.text.as_ref());
            compose::context_info(
                Some(&reply.message_id),
                Some(&participant),
                quoted,
                &out.mentions,
            )
        }
    };
    Ok(Some(ctx))
}

/// The message a `reply_to` names in the store.
enum Quoted {
    /// One this session sent (by wagate id or WhatsApp id).
    Sent(queue::MessageRecord),
    /// One this session received (by wagate id).
    Received(InboundRecord),
}

fn text_message(text: Option<&String>) -> Option<wa::Message> {
    text.map(|t| wa::Message {
        conversation: Some(t.clone()),
        ..Default::default()
    })
}

/// What a quote of a received message shows: the message as received when it was kept
/// (media, polls; without its secret), else its text.
fn received_content(rec: &InboundRecord) -> Option<wa::Message> {
    match super::inbound::kept_message(rec).and_then(Result::ok) {
        Some(mut m) => {
            m.message_context_info = waproto::buffa::MessageField::none();
            Some(m)
        }
        None => text_message(rec.text.as_ref()),
    }
}

/// Whether a received message's chat is the chat a reply goes to. A person may be named by
/// phone-number JID on one side and by LID on the other: the client's mapping decides.
async fn same_chat(client: &Client, received: &str, to: &compose::Recipient) -> bool {
    let to = to.as_str();
    if received == to {
        return true;
    }
    let (Ok(a), Ok(b)) = (
        received.parse::<whatsapp_rust::Jid>(),
        to.parse::<whatsapp_rust::Jid>(),
    ) else {
        return false;
    };
    if a.is_group() || b.is_group() {
        return false;
    }
    match client.get_lid_pn_entry(&a).await {
        Ok(Some(entry)) => *b.user == *entry.lid || *b.user == *entry.phone_number,
        _ => false,
    }
}
