//! The domain events every room speaks, and the bus that carries them live.
//!
//! The bus is a tokio broadcast channel: a slow reader may lag and lose notices, and must
//! then re-read current state from the store or the engine. Nothing durable travels only on
//! the bus; what must survive a crash is written to the store first.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why a session stopped for good (until a user acts).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailReason {
    /// The account removed this device, or the server logged it out. Keys are wiped.
    LoggedOut,
    /// A temporary ban; `until` says when it ends.
    Banned,
    /// Every QR code of the pairing attempt expired unscanned; `start` builds a fresh client.
    QrExhausted,
    /// WhatsApp refuses this client version.
    ClientOutdated,
    /// Another connection with the same credentials replaced this one.
    Replaced,
    /// Pairing was rejected or failed.
    PairFailed,
    /// WhatsApp asked for the account's passkey before linking this device; wagate holds no
    /// passkey, so the link cannot finish (the phone's owner must link without one).
    PasskeyRequired,
    /// The store could not load or save the session's keys.
    Storage,
}

impl FailReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailReason::LoggedOut => "logged_out",
            FailReason::Banned => "banned",
            FailReason::QrExhausted => "qr_exhausted",
            FailReason::ClientOutdated => "client_outdated",
            FailReason::Replaced => "replaced",
            FailReason::PairFailed => "pair_failed",
            FailReason::PasskeyRequired => "passkey_required",
            FailReason::Storage => "storage",
        }
    }
}

/// Why a session is not connected while its client reconnects by itself.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The connection ended: closed by WhatsApp or the network, or a read error.
    #[default]
    ConnectionLost,
    /// WhatsApp stopped answering on an open connection (a Wi-Fi drop, a router reboot, a
    /// NAT timeout): nothing came back for a ping; the client reconnects.
    NoAnswer,
    /// The session has not reached WhatsApp since it started: connecting fails.
    ConnectFailed,
}

impl DisconnectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ConnectionLost => "connection_lost",
            DisconnectReason::NoAnswer => "no_answer",
            DisconnectReason::ConnectFailed => "connect_failed",
        }
    }
}

/// Where a session is. Timestamps are unix milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SessionState {
    Stopped,
    Connecting,
    /// Waiting for a scan (`code` is the QR payload) or for the phone to enter `pair_code`.
    Qr {
        code: String,
        expires_at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pair_code: Option<String>,
    },
    Connected {
        since: i64,
    },
    /// Lost the connection (or never reached WhatsApp); the client reconnects by itself.
    /// `attempts`: reconnect attempts since the link was lost; `message`: what the library
    /// said of the cause, when it said something.
    Disconnected {
        since: i64,
        attempts: u32,
        #[serde(default)]
        reason: DisconnectReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Failed {
        reason: FailReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

impl SessionState {
    /// The state's name as the API and logs show it.
    pub fn name(&self) -> &'static str {
        match self {
            SessionState::Stopped => "stopped",
            SessionState::Connecting => "connecting",
            SessionState::Qr { .. } => "qr",
            SessionState::Connected { .. } => "connected",
            SessionState::Disconnected { .. } => "disconnected",
            SessionState::Failed { .. } => "failed",
        }
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, SessionState::Failed { .. })
    }
}

/// One domain event: what webhooks deliver and SSE clients see.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// `evt_` + ULID.
    pub id: String,
    pub session: String,
    /// Grows by one per event of the session (from 1), so receivers can order what arrives
    /// out of order; assigned when the event is written to the outbox (0 before, and for
    /// `webhook.test`, which belongs to no session).
    #[serde(default)]
    pub seq: u64,
    /// Unix milliseconds.
    pub timestamp: i64,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Where the outbox's event log holds it (write order across sessions; 0 before it is
    /// written). Not part of the body: SSE catch-up resumes from it.
    #[serde(skip)]
    pub pos: u64,
}

impl Event {
    pub fn new(session: &str, kind: EventKind) -> Self {
        Event {
            id: format!("evt_{}", ulid::Ulid::new()),
            session: session.to_string(),
            seq: 0,
            timestamp: now_ms(),
            kind,
            pos: 0,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }
}

/// The typed `data` of each event type.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", content = "data")]
pub enum EventKind {
    #[serde(rename = "session.connected")]
    SessionConnected {
        phone: Option<String>,
        lid: Option<String>,
    },
    #[serde(rename = "session.disconnected")]
    SessionDisconnected {
        attempts: u32,
        #[serde(default)]
        reason: DisconnectReason,
        #[serde(default)]
        message: Option<String>,
    },
    #[serde(rename = "session.qr")]
    SessionQr { code: String, expires_at: i64 },
    #[serde(rename = "session.failed")]
    SessionFailed {
        reason: FailReason,
        until: Option<i64>,
        message: Option<String>,
    },
    #[serde(rename = "message.received")]
    MessageReceived(Box<MessageReceived>),
    #[serde(rename = "message.sent")]
    MessageSent(MessageUpdate),
    #[serde(rename = "message.delivered")]
    MessageDelivered(MessageUpdate),
    #[serde(rename = "message.read")]
    MessageRead(MessageUpdate),
    #[serde(rename = "message.failed")]
    MessageFailed(MessageUpdate),
    /// Sent by `POST /api/webhooks/{id}/test` to that endpoint alone.
    #[serde(rename = "webhook.test")]
    WebhookTest { endpoint: String, message: String },
    /// Someone calls the account (or called while the device was offline: `offline`).
    #[serde(rename = "call.received")]
    CallReceived(CallInfo),
    /// A call was rejected: by the session's `reject_calls` setting or through the API.
    #[serde(rename = "call.rejected")]
    CallRejected(CallInfo),
    /// People joined, left, were added, removed, promoted or demoted, or asked to join.
    #[serde(rename = "group.participants")]
    GroupParticipants(GroupChange),
    /// A group's subject, description, settings or invite link changed, or it was created.
    #[serde(rename = "group.updated")]
    GroupUpdated(GroupChange),
}

/// A person a group change names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupPerson {
    /// The JID the group names them by.
    pub jid: String,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub lid: Option<String>,
}

/// What changed in a group, and who did it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GroupChange {
    /// The group's JID.
    pub group: String,
    /// `group.participants`: add, join (by invite link), remove, leave, promote, demote,
    /// join_request. `group.updated`: created, subject, description, announce, locked,
    /// ephemeral, approval, invite_reset, deleted.
    pub action: String,
    /// The people it names (`group.participants`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<GroupPerson>,
    /// Who made the change, when WhatsApp says.
    #[serde(default)]
    pub by: Option<GroupPerson>,
    /// The new subject or description (`null` description: removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// announce, locked, approval: on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// ephemeral: the timer in seconds (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_s: Option<u32>,
    /// When WhatsApp stamped it (unix ms).
    pub at: i64,
}

/// A call offered to the account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CallInfo {
    /// WhatsApp's call id (`POST .../calls/{call_id}/reject` names it).
    pub call_id: String,
    /// The caller's JID as the call named it (often a LID).
    pub from: String,
    /// The caller's phone-number JID, when known.
    #[serde(default)]
    pub from_phone: Option<String>,
    /// The caller's LID, when known.
    #[serde(default)]
    pub from_lid: Option<String>,
    /// The caller's push name, when the call carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_name: Option<String>,
    /// A video call (else voice).
    pub video: bool,
    /// The group's JID for a group call.
    #[serde(default)]
    pub group: Option<String>,
    /// Offered while the device was offline (it was missed; it cannot be rejected).
    #[serde(default)]
    pub offline: bool,
    /// When the call was offered (unix ms).
    pub offered_at: i64,
    /// `call.rejected`: `auto` (the session's `reject_calls`) or `api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_by: Option<String>,
    /// `call.rejected` with the session's `call_reply`: the id of the text queued to the
    /// caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_id: Option<String>,
}

impl EventKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::SessionConnected { .. } => "session.connected",
            EventKind::SessionDisconnected { .. } => "session.disconnected",
            EventKind::SessionQr { .. } => "session.qr",
            EventKind::SessionFailed { .. } => "session.failed",
            EventKind::MessageReceived(_) => "message.received",
            EventKind::MessageSent(_) => "message.sent",
            EventKind::MessageDelivered(_) => "message.delivered",
            EventKind::MessageRead(_) => "message.read",
            EventKind::MessageFailed(_) => "message.failed",
            EventKind::WebhookTest { .. } => "webhook.test",
            EventKind::CallReceived(_) => "call.received",
            EventKind::CallRejected(_) => "call.rejected",
            EventKind::GroupParticipants(_) => "group.participants",
            EventKind::GroupUpdated(_) => "group.updated",
        }
    }
}

/// The event types, as webhook filters name them.
pub const EVENT_TYPES: [&str; 14] = [
    "message.received",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "session.connected",
    "session.disconnected",
    "session.qr",
    "session.failed",
    "webhook.test",
    "call.received",
    "call.rejected",
    "group.participants",
    "group.updated",
];

/// A message that reached a session, as far as the engine decodes it so far.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageReceived {
    /// wagate's id for the message (`msg_` + a ULID derived from the session, chat, sender
    /// and WhatsApp id, so a message handed over twice keeps its id).
    #[serde(default)]
    pub id: String,
    /// WhatsApp's stanza id.
    pub wa_id: String,
    pub chat: String,
    /// The sender's JID as the stanza names it (phone number or LID).
    pub from: String,
    /// The sender's phone-number JID, when known.
    #[serde(default)]
    pub from_phone: Option<String>,
    /// The sender's LID, when known.
    #[serde(default)]
    pub from_lid: Option<String>,
    pub push_name: Option<String>,
    /// Unix milliseconds, as the sender stamped it.
    pub sent_at: i64,
    /// The text, or a media message's caption.
    pub text: Option<String>,
    /// The group's JID when the chat is a group (the sender stays in `from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The message this one quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageRef>,
    /// JIDs the message mentions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// What the message is: `kind` and that kind's fields.
    #[serde(flatten)]
    pub content: Box<InboundContent>,
}

/// A reference to another message of the chat by its WhatsApp id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MessageRef {
    /// wagate's id of the referenced message (`msg_...`) when this session sent it or
    /// received it and still keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub wa_id: String,
    /// Who wrote the referenced message, when the reference says (groups, and quotes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// Whether the referenced message is one this session sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub from_me: bool,
}

/// Media of an inbound message; the bytes are fetched through `url`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InboundMedia {
    pub mimetype: Option<String>,
    /// Bytes of the decrypted file.
    pub size: Option<u64>,
    /// Hex SHA-256 of the decrypted file.
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    /// Duration of audio and video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Audio recorded as a voice note.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
    /// Animated sticker, or a video sent as a GIF.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
    /// The device URL that downloads it: `/api/sessions/{sid}/messages/{id}/media`.
    pub url: String,
    /// The file as base64, when it is no larger than `webhooks.inline_media_max_bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
}

/// A link preview attached to a text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LinkPreview {
    pub url: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// One shared contact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SharedContact {
    pub name: Option<String>,
    pub vcard: Option<String>,
}

/// The kind of an inbound message and its fields (`kind` in `message.received`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InboundContent {
    Text {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link_preview: Option<LinkPreview>,
    },
    Image {
        #[serde(flatten)]
        media: InboundMedia,
    },
    Video {
        #[serde(flatten)]
        media: InboundMedia,
    },
    Audio {
        #[serde(flatten)]
        media: InboundMedia,
    },
    Document {
        #[serde(flatten)]
        media: InboundMedia,
    },
    Sticker {
        #[serde(flatten)]
        media: InboundMedia,
    },
    Location {
        latitude: Option<f64>,
        longitude: Option<f64>,
        name: Option<String>,
        address: Option<String>,
        url: Option<String>,
        /// A live location share.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    /// One or more shared contacts.
    Contact { contacts: Vec<SharedContact> },
    Poll {
        question: String,
        options: Vec<String>,
        /// How many options a voter may choose (0 = any number).
        selectable: u32,
    },
    /// A vote on a poll: `options` are the chosen option names (empty = vote withdrawn);
    /// `null` with `error` when it could not be decrypted (the poll is unknown here).
    PollVote {
        poll: MessageRef,
        options: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A reaction; an empty `emoji` removes the sender's reaction.
    Reaction { target: MessageRef, emoji: String },
    /// A row chosen in a list message.
    ListReply {
        id: Option<String>,
        title: Option<String>,
        description: Option<String>,
    },
    /// A button pressed on a buttons or template message.
    ButtonsReply {
        id: Option<String>,
        text: Option<String>,
    },
    /// The sender edited an earlier message; `text` is the new text.
    Edit { target: MessageRef },
    /// The sender deleted an earlier message for everyone.
    Revoke { target: MessageRef },
    /// A message kind wagate does not map (yet); `message_type` is WhatsApp's name for it.
    Unsupported { message_type: String },
}

impl Default for InboundContent {
    fn default() -> Self {
        InboundContent::Text { link_preview: None }
    }
}

impl InboundContent {
    /// The message a reaction, edit, revoke or poll vote is about.
    pub fn target_mut(&mut self) -> Option<&mut MessageRef> {
        match self {
            InboundContent::Reaction { target, .. }
            | InboundContent::Edit { target }
            | InboundContent::Revoke { target } => Some(target),
            InboundContent::PollVote { poll, .. } => Some(poll),
            _ => None,
        }
    }

    /// Every `kind` name [`InboundContent::name`] gives (Home Assistant's inbound event
    /// entity lists them as its event types).
    pub const KINDS: &'static [&'static str] = &[
        "text",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "contact",
        "poll",
        "poll_vote",
        "reaction",
        "list_reply",
        "buttons_reply",
        "edit",
        "revoke",
        "unsupported",
    ];

    /// The `kind` name (one of [`InboundContent::KINDS`]).
    pub fn name(&self) -> &'static str {
        match self {
            InboundContent::Text { .. } => "text",
            InboundContent::Image { .. } => "image",
            InboundContent::Video { .. } => "video",
            InboundContent::Audio { .. } => "audio",
            InboundContent::Document { .. } => "document",
            InboundContent::Sticker { .. } => "sticker",
            InboundContent::Location { .. } => "location",
            InboundContent::Contact { .. } => "contact",
            InboundContent::Poll { .. } => "poll",
            InboundContent::PollVote { .. } => "poll_vote",
            InboundContent::Reaction { .. } => "reaction",
            InboundContent::ListReply { .. } => "list_reply",
            InboundContent::ButtonsReply { .. } => "buttons_reply",
            InboundContent::Edit { .. } => "edit",
            InboundContent::Revoke { .. } => "revoke",
            InboundContent::Unsupported { .. } => "unsupported",
        }
    }

    /// The media descriptor, for the media kinds.
    pub fn media(&self) -> Option<&InboundMedia> {
        match self {
            InboundContent::Image { media }
            | InboundContent::Video { media }
            | InboundContent::Audio { media }
            | InboundContent::Document { media }
            | InboundContent::Sticker { media } => Some(media),
            _ => None,
        }
    }

    pub fn media_mut(&mut self) -> Option<&mut InboundMedia> {
        match self {
            InboundContent::Image { media }
            | InboundContent::Video { media }
            | InboundContent::Audio { media }
            | InboundContent::Document { media }
            | InboundContent::Sticker { media } => Some(media),
            _ => None,
        }
    }
}

/// A sent message moved on: sent, delivered, read or failed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageUpdate {
    /// wagate's id, the one the send API returned.
    pub id: String,
    /// WhatsApp's message id.
    pub wa_id: Option<String>,
    pub kind: String,
    /// The recipient's JID as sent.
    pub to: String,
    /// The recipient's phone-number JID, when known.
    #[serde(default)]
    pub to_phone: Option<String>,
    /// The recipient's LID, when known.
    #[serde(default)]
    pub to_lid: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For an `edit` or a `revoke`: wagate's id of the message it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// What travels on the bus: domain events, and every state change (including the ones that
/// are no webhook event, such as `connecting`).
// An event is most of what travels; boxing it would add an allocation per notice for no
// saving (each notice is moved into the channel once).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Notice {
    State {
        session: String,
        state: SessionState,
    },
    Event(Event),
    /// A session's send queue changed length.
    Queue {
        session: String,
        depth: u64,
    },
    /// How many of a session's webhook deliveries are `failed` now.
    Deliveries {
        session: String,
        failed: u64,
    },
}

/// The broadcast bus. Cloning shares the channel.
#[derive(Clone, Debug)]
pub struct Bus {
    tx: broadcast::Sender<Notice>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus::new(256)
    }
}

impl Bus {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Bus { tx }
    }

    /// Publish to whoever listens now; no listener is not an error.
    pub fn publish(&self, notice: Notice) {
        let _ = self.tx.send(notice);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_state_serializes_with_reason_and_until() {
        let s = SessionState::Failed {
            reason: FailReason::Banned,
            until: Some(1_700_000_000_000),
            message: None,
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["state"], "failed");
        assert_eq!(v["reason"], "banned");
        assert_eq!(v["until"], 1_700_000_000_000i64);
        let back: SessionState = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_disconnected_state_stored_before_reasons_reads_back() {
        let old = serde_json::json!({"state": "disconnected", "since": 5, "attempts": 2});
        let s: SessionState = serde_json::from_value(old).unwrap();
        assert_eq!(
            s,
            SessionState::Disconnected {
                since: 5,
                attempts: 2,
                reason: DisconnectReason::ConnectionLost,
                message: None,
            }
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["reason"], "connection_lost");
    }

    #[test]
    fn event_body_has_type_and_data() {
        let e = Event::new(
            "default",
            EventKind::SessionDisconnected {
                attempts: 3,
                reason: DisconnectReason::NoAnswer,
                message: None,
            },
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "session.disconnected");
        assert_eq!(v["data"]["attempts"], 3);
        assert_eq!(v["data"]["reason"], "no_answer");
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(e.type_name(), "session.disconnected");
    }
}
