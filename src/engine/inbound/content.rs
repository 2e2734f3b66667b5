//! What an inbound message is: WhatsApp's `Message` mapped to the typed `data` of
//! `message.received` ([`InboundContent`], the text or caption, the quote and the mentions).
//!
//! Pure: no client, no store. A poll vote comes out undecrypted (`options: None`); the hook
//! decrypts it afterwards with the poll's secret. Anything not mapped is `unsupported` with
//! WhatsApp's name for the message type, never dropped.
//!
//! The references [`map`] gives are as the sender wrote them: a key's `from_me` says the
//! *sender* wrote the target. [`orient`] turns them to the session's point of view (what
//! `message.received` promises) once the session's own identities are known.

use waproto::whatsapp as wa;
use whatsapp_rust::prelude::MessageExt;

use crate::events::{InboundContent, InboundMedia, LinkPreview, MessageRef, SharedContact};

/// The mapped message.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub content: InboundContent,
    /// The text, or a media message's caption (an edit's new text).
    pub text: Option<String>,
    pub reply_to: Option<MessageRef>,
    pub mentions: Vec<String>,
}

/// Fields of `Message` that ride along with the content and say nothing of its kind.
const CARRIER_FIELDS: [u32; 3] = [2, 15, 35];

/// Map a decrypted message. `media_url` is the device URL media kinds carry.
pub fn map(msg: &wa::Message, media_url: &str) -> Mapped {
    let base = msg.get_base_message();
    let mut text = base.text_content().map(str::to_string);
    let ctx = context_info(base);
    let reply_to = ctx.and_then(|c| {
        c.stanza_id
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|id| MessageRef {
                id: None,
                wa_id: id.clone(),
                participant: c.participant.clone().filter(|p| !p.is_empty()),
                from_me: false,
            })
    });
    let mentions = ctx.map(|c| c.mentioned_jid.clone()).unwrap_or_default();
    let media = |url: &str| InboundMedia {
        url: url.to_string(),
        ..InboundMedia::default()
    };
    let content = if let Some(m) = base.image_message.as_option() {
        text = m.caption.clone();
        InboundContent::Image {
            media: InboundMedia {
                mimetype: m.mimetype.clone(),
                size: m.file_length,
                sha256: m.file_sha256.as_deref().map(hex),
                caption: m.caption.clone(),
                width: m.width,
                height: m.height,
                ..media(media_url)
            },
        }
    } else if let Some(m) = base
        .video_message
        .as_option()
        .or(base.ptv_message.as_option())
    {
        text = m.caption.clone();
        InboundContent::Video {
            media: InboundMedia {
                mimetype: m.mimetype.clone(),
                size: m.file_length,
                sha256: m.file_sha256.as_deref().map(hex),
                caption: m.caption.clone(),
                seconds: m.seconds,
                width: m.width,
                height: m.height,
                animated: m.gif_playback.unwrap_or(false),
                ..media(media_url)
            },
        }
    } else if let Some(m) = base.audio_message.as_option() {
        InboundContent::Audio {
            media: InboundMedia {
                mimetype: m.mimetype.clone(),
                size: m.file_length,
                sha256: m.file_sha256.as_deref().map(hex),
                seconds: m.seconds,
                voice: m.ptt.unwrap_or(false),
                ..media(media_url)
            },
        }
    } else if let Some(m) = base.document_message.as_option() {
        text = m.caption.clone();
        InboundContent::Document {
            media: InboundMedia {
                mimetype: m.mimetype.clone(),
                size: m.file_length,
                sha256: m.file_sha256.as_deref().map(hex),
                caption: m.caption.clone(),
                file_name: m.file_name.clone().or_else(|| m.title.clone()),
                ..media(media_url)
            },
        }
    } else if let Some(m) = base.sticker_message.as_option() {
        InboundContent::Sticker {
            media: InboundMedia {
                mimetype: m.mimetype.clone(),
                size: m.file_length,
                sha256: m.file_sha256.as_deref().map(hex),
                width: m.width,
                height: m.height,
                animated: m.is_animated.unwrap_or(false),
                ..media(media_url)
            },
        }
    } else if let Some(m) = base.location_message.as_option() {
        InboundContent::Location {
            latitude: m.degrees_latitude,
            longitude: m.degrees_longitude,
            name: m.name.clone(),
            address: m.address.clone(),
            url: m.url.clone(),
            live: m.is_live.unwrap_or(false),
        }
    } else if let Some(m) = base.live_location_message.as_option() {
        text = m.caption.clone();
        InboundContent::Location {
            latitude: m.degrees_latitude,
            longitude: m.degrees_longitude,
            name: None,
            address: None,
            url: None,
            live: true,
        }
    } else if let Some(m) = base.contact_message.as_option() {
        InboundContent::Contact {
            contacts: vec![SharedContact {
                name: m.display_name.clone(),
                vcard: m.vcard.clone(),
            }],
        }
    } else if let Some(m) = base.contacts_array_message.as_option() {
        InboundContent::Contact {
            contacts: m
                .contacts
                .iter()
                .map(|c| SharedContact {
                    name: c.display_name.clone(),
                    vcard: c.vcard.clone(),
                })
                .collect(),
        }
    } else if let Some(m) = poll_creation(base) {
        text = m.name.clone();
        InboundContent::Poll {
            question: m.name.clone().unwrap_or_default(),
            options: m
                .options
                .iter()
                .filter_map(|o| o.option_name.clone())
                .collect(),
            selectable: m.selectable_options_count.unwrap_or(0),
        }
    } else if let Some(m) = base.poll_update_message.as_option() {
        InboundContent::PollVote {
            poll: key_ref(m.poll_creation_message_key.as_option()),
            options: None,
            error: None,
        }
    } else if let Some(m) = base.reaction_message.as_option() {
        InboundContent::Reaction {
            target: key_ref(m.key.as_option()),
            emoji: m.text.clone().unwrap_or_default(),
        }
    } else if let Some(m) = base.list_response_message.as_option() {
        InboundContent::ListReply {
            id: m
                .single_select_reply
                .as_option()
                .and_then(|r| r.selected_row_id.clone()),
            title: m.title.clone(),
            description: m.description.clone(),
        }
    } else if let Some(m) = base.buttons_response_message.as_option() {
        use waproto::whatsapp::__buffa::oneof::message::buttons_response_message::Response;
        let shown = match &m.response {
            Some(Response::SelectedDisplayText(t)) => Some(t.clone()),
            _ => None,
        };
        text = shown.clone();
        InboundContent::ButtonsReply {
            id: m.selected_button_id.clone(),
            text: shown,
        }
    } else if let Some(m) = base.template_button_reply_message.as_option() {
        text = m.selected_display_text.clone();
        InboundContent::ButtonsReply {
            id: m.selected_id.clone(),
            text: m.selected_display_text.clone(),
        }
    } else if let Some(p) = base.protocol_message.as_option() {
        use wa::message::protocol_message::Type;
        match p.r#type {
            Some(Type::REVOKE) => InboundContent::Revoke {
                target: key_ref(p.key.as_option()),
            },
            Some(Type::MESSAGE_EDIT) => {
                text = p
                    .edited_message
                    .as_option()
                    .and_then(|m| m.text_content().or(m.get_caption()))
                    .map(str::to_string);
                InboundContent::Edit {
                    target: key_ref(p.key.as_option()),
                }
            }
            other => InboundContent::Unsupported {
                message_type: match other {
                    Some(t) => format!("protocolMessage.{t:?}"),
                    None => "protocolMessage".into(),
                },
            },
        }
    } else if text.is_some() {
        let link_preview = base.extended_text_message.as_option().and_then(|e| {
            let url = e.matched_text.clone().filter(|u| !u.is_empty());
            (url.is_some() || e.title.is_some()).then(|| LinkPreview {
                url,
                title: e.title.clone(),
                description: e.description.clone(),
            })
        });
        InboundContent::Text { link_preview }
    } else {
        InboundContent::Unsupported {
            message_type: type_name(base),
        }
    };
    Mapped {
        content,
        text,
        reply_to,
        mentions,
    }
}

/// Turn a reference from the sender's point of view to this session's: `from_me` becomes
/// "this session wrote the target". `me` holds the session's own users (phone number and
/// LID, without server). `key` says the reference is a message key (reactions, edits,
/// revokes, poll votes), whose `from_me` the sender set; a quote has only its `participant`.
///
/// A key the sender marked `from_me` names the sender's own message. Otherwise the
/// `participant` names the author when given; without one, a key in a one-to-one chat names
/// the other side's message, which is this session's.
pub fn orient(r: &mut MessageRef, me: &[String], group: bool, key: bool) {
    let sender_wrote_it = key && r.from_me;
    r.from_me = !sender_wrote_it
        && match r.participant.as_deref() {
            Some(p) => {
                let user = p.split(['@', ':']).next().unwrap_or_default();
                !user.is_empty() && me.iter().any(|u| u == user)
            }
            None => key && !group,
        };
}

fn poll_creation(base: &wa::Message) -> Option<&wa::message::PollCreationMessage> {
    base.poll_creation_message
        .as_option()
        .or(base.poll_creation_message_v2.as_option())
        .or(base.poll_creation_message_v3.as_option())
        .or(base.poll_creation_message_v5.as_option())
        .or(base.poll_creation_message_v6.as_option())
}

fn key_ref(key: Option<&wa::MessageKey>) -> MessageRef {
    match key {
        Some(k) => MessageRef {
            id: None,
            wa_id: k.id.clone().unwrap_or_default(),
            participant: k.participant.clone().filter(|p| !p.is_empty()),
            from_me: k.from_me.unwrap_or(false),
        },
        None => MessageRef::default(),
    }
}

/// The context info of the content, wherever the kind keeps it.
fn context_info(base: &wa::Message) -> Option<&wa::ContextInfo> {
    [
        base.extended_text_message
            .as_option()
            .map(|m| &m.context_info),
        base.image_message.as_option().map(|m| &m.context_info),
        base.video_message.as_option().map(|m| &m.context_info),
        base.audio_message.as_option().map(|m| &m.context_info),
        base.document_message.as_option().map(|m| &m.context_info),
        base.sticker_message.as_option().map(|m| &m.context_info),
        base.location_message.as_option().map(|m| &m.context_info),
        base.contact_message.as_option().map(|m| &m.context_info),
        base.contacts_array_message
            .as_option()
            .map(|m| &m.context_info),
        base.list_response_message
            .as_option()
            .map(|m| &m.context_info),
        base.buttons_response_message
            .as_option()
            .map(|m| &m.context_info),
        base.template_button_reply_message
            .as_option()
            .map(|m| &m.context_info),
        poll_creation(base).map(|m| &m.context_info),
    ]
    .into_iter()
    .flatten()
    .find_map(|c| c.as_option())
}

/// The protocol name of the first content field set in `base` (`unsupported` messages).
pub fn type_name(base: &wa::Message) -> String {
    let bytes = waproto::codec::message_to_vec(base);
    let mut found = None;
    for field in top_level_fields(&bytes) {
        if CARRIER_FIELDS.contains(&field) {
            continue;
        }
        found = Some(field);
        break;
    }
    match found {
        Some(f) => super::fields::MESSAGE_FIELDS
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(_, name)| (*name).to_string())
            .unwrap_or_else(|| format!("field{f}")),
        None => "empty".into(),
    }
}

/// Field numbers of the top level of an encoded protobuf message, in order.
fn top_level_fields(mut b: &[u8]) -> Vec<u32> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(key) = varint(&mut b) else { break };
        out.push((key >> 3) as u32);
        let skip = match key & 7 {
            0 => match varint(&mut b) {
                Some(_) => 0,
                None => break,
            },
            1 => 8,
            2 => match varint(&mut b) {
                Some(n) => n as usize,
                None => break,
            },
            5 => 4,
            _ => break,
        };
        if skip > b.len() {
            break;
        }
        b = &b[skip..];
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests;
