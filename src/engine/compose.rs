//! The 14 message kinds of the send API, turned into WhatsApp protocol messages.
//!
//! Sending a message goes through three steps; the first and last do no I/O:
//!
//! 1. [`parse`] (at request time): validates the body of `POST
//!    /api/sessions/{sid}/messages/{kind}` and returns an [`Outgoing`], which the send queue
//!    stores as JSON. Every mistake names its field with a JSON path (`sections[0].rows[1].id`);
//!    unknown fields are refused, because a typo'd optional field would otherwise vanish.
//! 2. Media (at send time, by the sender): a media kind carries a [`MediaSource`]; the sender
//!    fetches or loads the bytes, picks the mimetype ([`mimetype_for`]), uploads them with
//!    `Client::upload(bytes, media_type(&content), ..)` ([`media_type`]) and turns the answer
//!    into an [`UploadedMedia`] ([`UploadedMedia::new`]).
//! 3. [`build`] (at send time): the protocol message, ready for
//!    `client.send_message_with_options(jid, msg, opts)`.
//!
//! # What each kind becomes on the wire
//!
//! | kind | `wa::Message` field |
//! |---|---|
//! | `text` | `conversation` (what WhatsApp Web sends for bare text) |
//! | `image` | `image_message` |
//! | `video` | `video_message` (`gif_playback` for `gif: true`) |
//! | `audio` | `audio_message` (`ptt` for `voice: true`: a push-to-talk voice note) |
//! | `document` | `document_message`, inside `document_with_caption_message` when captioned |
//! | `sticker` | `sticker_message` |
//! | `location` | `location_message` |
//! | `contact` | `contact_message` (a vCard 3.0) |
//! | `poll` | `poll_creation_message_v3` (single choice) or `poll_creation_message`, with a fresh 32-byte `message_context_info.message_secret` |
//! | `reaction` | `reaction_message` |
//! | `list` | `interactive_message` with one native-flow `single_select` button |
//! | `buttons` | `interactive_message` with native-flow `quick_reply` buttons |
//! | `template` | `interactive_message` with native-flow `cta_url` / `cta_call` / `quick_reply` buttons |
//! | `link_preview` | `extended_text_message` with `matched_text`, `title`, `description`, `jpeg_thumbnail` |
//!
//! `list`, `buttons` and `template` are sent as top-level native-flow `InteractiveMessage`s,
//! never in the legacy `ListMessage` / `ButtonsMessage` / `TemplateMessage` forms and never
//! in a `view_once_message` wrapper. whatsapp-rust 0.7 adds the `<biz>` stanza child (and
//! `<bot biz_bot="1"/>` in chats with one person) that the server needs to deliver native-flow
//! messages, but it looks for the `InteractiveMessage` only at the top level (or inside
//! `document_with_caption_message`); a `view_once_message` wrapper would hide it and also
//! mark the message view-once. The legacy forms are refused by the server (`405`) or not
//! rendered by current phones. What renders where is in `docs/message-kinds.md`; in short,
//! from public reports rather than our own measurements: phones render native-flow buttons
//! (Android also lists; `single_select` lists were reported not to render on iOS), WhatsApp
//! Web and Desktop mostly show "open the message on your phone", and whether a personal
//! (non-Business) account's interactive messages render at all is unconfirmed.
//!
//! # Groups, replies, mentions
//!
//! `to` may be a group JID. Every kind but `reaction` takes `reply_to` (+
//! `reply_to_participant`, `reply_to_text`), kept as [`ReplyTo`] and resolved at send time
//! (`engine::reply`); `text` takes `mentions` ([`Outgoing::mentions`]). Both become the
//! message's `context_info` through [`context_info`] and [`with_context`].
//!
//! # Stored form
//!
//! [`Outgoing`] serializes to JSON like
//! `{"to":"447700900123@s.whatsapp.net","content":{"kind":"text","text":"hi"}}`. Media is a
//! [`MediaSource`]: `{"url":"https://..."}`, `{"inline":"<base64>"}` (bytes decoded and
//! checked at request time, stored as standard base64) or `{"upload":"<id>"}` (a blob the HTTP
//! layer stored from a multipart upload). Inline media makes the queue row as large as the
//! file (and a third more): keep [`DEFAULT_MAX_INLINE_BYTES`] modest and prefer uploads for
//! big files.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use wacore::download::MediaType;
use wacore_binary::{Jid, Server};
use waproto::buffa::MessageField;
use waproto::whatsapp as wa;

use super::normalize_phone;

/// The kinds the send API knows, in the order the API documentation lists them.
pub const KINDS: &[&str] = &[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contact",
    "poll",
    "reaction",
    "list",
    "buttons",
    "template",
    "link_preview",
];

/// The default limit for media sent inline as base64 (decoded bytes): WhatsApp's limit for
/// images, audio and video. Larger files (documents up to 2 GB) should come as a URL or an
/// upload, not inside the JSON body.
pub const DEFAULT_MAX_INLINE_BYTES: usize = 16 * 1024 * 1024;
/// The limit for a link preview's inline JPEG thumbnail. WhatsApp's own are a few KiB.
pub const MAX_THUMBNAIL_BYTES: usize = 64 * 1024;
/// The longest text or caption, in characters.
pub const MAX_TEXT_CHARS: usize = 65_536;

// Limits of the interactive kinds, in characters. The short labels follow the WhatsApp
// Business Platform limits (phones truncate longer ones); the body is more generous than the
// platform's 1024.
const MAX_BODY_CHARS: usize = 4096;
const MAX_HEADER_CHARS: usize = 60;
const MAX_FOOTER_CHARS: usize = 60;
const MAX_BUTTON_TITLE_CHARS: usize = 20;
const MAX_ROW_TITLE_CHARS: usize = 24;
const MAX_ROW_DESCRIPTION_CHARS: usize = 72;
const MAX_SECTION_TITLE_CHARS: usize = 24;
const MAX_ID_CHARS: usize = 200;
const MAX_LIST_ROWS: usize = 10;
const MAX_LIST_SECTIONS: usize = 10;
const MAX_BUTTONS: usize = 3;
const MAX_POLL_QUESTION_CHARS: usize = 255;
const MAX_POLL_OPTION_CHARS: usize = 100;
const MAX_POLL_OPTIONS: usize = 12;
const MAX_URL_CHARS: usize = 2048;
const MAX_NAME_CHARS: usize = 256;
const MAX_VCARD_CHARS: usize = 16 * 1024;

/// Why a request body cannot become a message, or a stored one cannot be built.
///
/// Each variant maps to one HTTP status ([`ComposeError::status`]); the HTTP layer turns it
/// into its error body. Field names are JSON paths into the request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// `404`: the path names no kind.
    #[error("unknown message kind '{kind}'; the kinds are: {}", known.join(", "))]
    UnknownKind {
        kind: String,
        known: &'static [&'static str],
    },
    /// `400`: a required field is absent (or `null`).
    #[error("missing field '{field}'")]
    Missing { field: String },
    /// `400`: a field has the wrong type or value, or is not a field of this kind.
    #[error("invalid field '{field}': {message}")]
    Invalid { field: String, message: String },
    /// `422`: `to` is neither a phone number nor a chat JID wagate can send to.
    #[error("bad recipient '{to}': {reason}")]
    BadRecipient { to: String, reason: &'static str },
    /// `413`: inline data over its limit.
    #[error("field '{field}' is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    /// `500`: [`build`] was given media for a kind without media, or none for a media kind.
    /// A bug in the caller, never the user's.
    #[error("message kind '{kind}' {}", if *.needs_media { "needs uploaded media" } else { "takes no media" })]
    MediaMismatch {
        kind: &'static str,
        needs_media: bool,
    },
}

impl ComposeError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            ComposeError::UnknownKind { .. } => 404,
            ComposeError::Missing { .. } | ComposeError::Invalid { .. } => 400,
            ComposeError::BadRecipient { .. } => 422,
            ComposeError::TooLarge { .. } => 413,
            ComposeError::MediaMismatch { .. } => 500,
        }
    }

    /// The JSON path of the field at fault, when there is one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ComposeError::Missing { field }
            | ComposeError::Invalid { field, .. }
            | ComposeError::TooLarge { field, .. } => Some(field),
            ComposeError::BadRecipient { .. } => Some("to"),
            ComposeError::UnknownKind { .. } | ComposeError::MediaMismatch { .. } => None,
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The stored form
// ---------------------------------------------------------------------------------------------

/// One message waiting in the send queue: what the queue stores, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    pub to: Recipient,
    pub content: Content,
    /// The message this one answers (a quote), resolved at send time ([`ReplyTo`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ReplyTo>,
    /// People a text mentions, as person JIDs (`<digits>@s.whatsapp.net` or `@lid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
}

/// A quoted message, for replies: the request's `reply_to` (+ `reply_to_participant`,
/// `reply_to_text`). The id is resolved when the message is sent: a message this session
/// sent (by wagate id or WhatsApp id) is quoted with its own content and the session as its
/// author, one it received (by wagate id) with its content and sender; any other id is
/// taken as the WhatsApp id of a received message, quoted with the given participant and
/// text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// A wagate message id, or WhatsApp's id of the quoted message.
    pub message_id: String,
    /// The quoted message's author (a person JID); in groups, needed for messages of others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
    /// The quoted text to show, for a message wagate does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A chat to send to, as a canonical JID string: `<digits>@s.whatsapp.net`, `<id>@g.us` or
/// `<digits>@lid`, never with a device part. Made by [`parse_recipient`] (or read back from
/// the queue, which stores only what it made).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recipient(String);

impl Recipient {
    /// The chat of a message the queue stored (its `to`, which [`parse_recipient`] made).
    pub(crate) fn stored(to: &str) -> Recipient {
        Recipient(to.to_string())
    }

    /// The JID string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JID to hand to whatsapp-rust.
    pub fn jid(&self) -> Result<Jid, ComposeError> {
        self.0.parse().map_err(|_| ComposeError::BadRecipient {
            to: self.0.clone(),
            reason: "not a valid JID",
        })
    }

    /// Whether this is a group chat.
    pub fn is_group(&self) -> bool {
        self.0.ends_with("@g.us")
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a media message's bytes come from. JSON: `{"url": "https://..."}`,
/// `{"inline": "<standard base64>"}` or `{"upload": "<blob id>"}`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaSource {
    /// An `http`/`https` URL the sender fetches at send time.
    Url(String),
    /// The bytes themselves, decoded from the request's `base64` and checked against the
    /// inline limit.
    Inline(#[serde(with = "b64")] Vec<u8>),
    /// A blob the HTTP layer stored from a multipart upload, by its id.
    Upload(String),
}

impl std::fmt::Debug for MediaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaSource::Url(url) => f.debug_tuple("Url").field(url).finish(),
            MediaSource::Inline(bytes) => write!(f, "Inline({} bytes)", bytes.len()),
            MediaSource::Upload(id) => f.debug_tuple("Upload").field(id).finish(),
        }
    }
}

/// One list section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

/// One list row; `id` comes back when the recipient picks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRow {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A quick-reply button; `id` comes back when the recipient taps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

/// A template button. JSON: `{"type": "url", "title", "url"}`, `{"type": "call", "title",
/// "phone"}`, `{"type": "quick_reply", "title", "id"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateButton {
    Url {
        title: String,
        url: String,
    },
    /// `phone` is digits with the country code, no `+`.
    Call {
        title: String,
        phone: String,
    },
    QuickReply {
        id: String,
        title: String,
    },
}

/// What a message says: one variant per kind, validated. JSON is internally tagged by
/// `kind`, e.g. `{"kind":"image","media":{"url":"https://x/y.jpg"},"caption":"hi"}`; absent
/// optional fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    Image {
        media: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mimetype: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
    },
    Video {
        media: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mimetype: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        /// Play as a looping GIF (muted, inline).
        #[serde(default, skip_serializing_if = "is_false")]
        gif: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
    },
    Audio {
        media: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mimetype: Option<String>,
        /// A push-to-talk voice note rather than an audio file.
        #[serde(default, skip_serializing_if = "is_false")]
        voice: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seconds: Option<u32>,
    },
    Document {
        media: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mimetype: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file_name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_count: Option<u32>,
    },
    Sticker {
        media: MediaSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        width: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        height: Option<u32>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    Contact {
        /// The name shown on the contact bubble.
        display_name: String,
        vcard: String,
    },
    Poll {
        question: String,
        options: Vec<String>,
        /// How many options a voter may pick: 1 for a single choice, 0 for any number.
        selectable_count: u32,
    },
    Reaction {
        /// The chat of the target message (the recipient), for the message key.
        chat: String,
        /// WhatsApp's id of the target message.
        message_id: String,
        /// The emoji; empty removes an earlier reaction.
        emoji: String,
        /// Whether the target message was sent by this session.
        #[serde(default, skip_serializing_if = "is_false")]
        from_me: bool,
        /// The target message's sender, in groups.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        participant: Option<String>,
    },
    List {
        text: String,
        /// The label of the button that opens the list.
        button: String,
        sections: Vec<ListSection>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
    },
    Buttons {
        text: String,
        buttons: Vec<ReplyButton>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
    },
    Template {
        text: String,
        buttons: Vec<TemplateButton>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer: Option<String>,
    },
    /// A new text (or caption) for a message this session sent (`PATCH .../messages/{id}`;
    /// not a kind of the send route).
    Edit {
        /// The chat of the target message.
        chat: String,
        /// WhatsApp's id of the target message.
        message_id: String,
        /// wagate's id of the target message, whose record the send marks edited.
        target: String,
        /// The target's kind: a text is edited as text, an image or video by its caption.
        target_kind: String,
        /// When the target was sent (unix ms): recipients drop an edit sent
        /// [`EDIT_DROPPED_AFTER_MS`] or more after it.
        target_sent_at: i64,
        text: String,
    },
    /// Delete for everyone a message this session sent (`POST .../messages/{id}/revoke`).
    Revoke {
        chat: String,
        message_id: String,
        target: String,
        target_sent_at: i64,
    },
    LinkPreview {
        /// The message text; contains `url` (appended at parse time when it did not).
        text: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// A small JPEG shown on the preview card.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_opt")]
        thumbnail: Option<Vec<u8>>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Content {
    /// The kind's name, as in the API path.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text { .. } => "text",
            Content::Image { .. } => "image",
            Content::Video { .. } => "video",
            Content::Audio { .. } => "audio",
            Content::Document { .. } => "document",
            Content::Sticker { .. } => "sticker",
            Content::Location { .. } => "location",
            Content::Contact { .. } => "contact",
            Content::Poll { .. } => "poll",
            Content::Reaction { .. } => "reaction",
            Content::List { .. } => "list",
            Content::Buttons { .. } => "buttons",
            Content::Template { .. } => "template",
            Content::LinkPreview { .. } => "link_preview",
            Content::Edit { .. } => "edit",
            Content::Revoke { .. } => "revoke",
        }
    }

    /// For an edit or a revoke: the wagate id of the message it changes.
    pub fn target(&self) -> Option<&str> {
        match self {
            Content::Edit { target, .. } | Content::Revoke { target, .. } => Some(target),
            _ => None,
        }
    }

    /// Where the media comes from, for the media kinds.
    pub fn media(&self) -> Option<&MediaSource> {
        match self {
            Content::Image { media, .. }
            | Content::Video { media, .. }
            | Content::Audio { media, .. }
            | Content::Document { media, .. }
            | Content::Sticker { media, .. } => Some(media),
            _ => None,
        }
    }

    /// The mimetype the request named (or a `data:` URL carried), if any.
    pub fn mimetype(&self) -> Option<&str> {
        match self {
            Content::Image { mimetype, .. }
            | Content::Video { mimetype, .. }
            | Content::Audio { mimetype, .. }
            | Content::Document { mimetype, .. } => mimetype.as_deref(),
            Content::Sticker { .. } => Some(STICKER_MIMETYPE),
            _ => None,
        }
    }

    /// The text the pacing worker types before sending (its length scales the typing
    /// indicator): the text or caption, if any.
    pub fn text(&self) -> Option<&str> {
        match self {
            Content::Text { text }
            | Content::List { text, .. }
            | Content::Buttons { text, .. }
            | Content::Template { text, .. }
            | Content::LinkPreview { text, .. } => Some(text),
            Content::Image { caption, .. }
            | Content::Video { caption, .. }
            | Content::Document { caption, .. } => caption.as_deref(),
            _ => None,
        }
    }
}

const STICKER_MIMETYPE: &str = "image/webp";
const VOICE_MIMETYPE: &str = "audio/ogg; codecs=opus";

/// What to upload the media of `content` as; `None` for kinds without media.
pub fn media_type(content: &Content) -> Option<MediaType> {
    match content {
        Content::Image { .. } => Some(MediaType::Image),
        Content::Video { .. } => Some(MediaType::Video),
        Content::Audio { .. } => Some(MediaType::Audio),
        Content::Document { .. } => Some(MediaType::Document),
        Content::Sticker { .. } => Some(MediaType::Sticker),
        _ => None,
    }
}

/// The mimetype to announce for the media of `content` once its bytes are known: the one the
/// request named, else one recognised from the bytes' magic numbers, else the kind's default
/// (`image/jpeg`, `video/mp4`, `audio/ogg; codecs=opus` for voice notes, `audio/mpeg`,
/// `application/octet-stream`, `image/webp`). For fetched URLs a sender may prefer the
/// response's `Content-Type` over the sniffed type. `None` for kinds without media.
pub fn mimetype_for(content: &Content, data: &[u8]) -> Option<String> {
    if let Some(m) = content.mimetype() {
        return Some(m.to_string());
    }
    let sniffed = sniff_mimetype(data);
    let fallback = match content {
        Content::Image { .. } => sniffed
            .filter(|m| m.starts_with("image/"))
            .or(Some("image/jpeg")),
        Content::Video { .. } => sniffed
            .filter(|m| m.starts_with("video/"))
            .or(Some("video/mp4")),
        Content::Audio { voice: true, .. } => Some(VOICE_MIMETYPE),
        Content::Audio { .. } => sniffed
            .filter(|m| m.starts_with("audio/"))
            .or(Some("audio/mpeg")),
        Content::Document { .. } => sniffed.or(Some("application/octet-stream")),
        _ => None,
    };
    fallback.map(str::to_string)
}

/// Recognises a few common media formats by their first bytes.
pub fn sniff_mimetype(data: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| data.get(offset..offset + magic.len()) == Some(magic);
    if at(0, &[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if at(0, b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if at(0, b"GIF87a") || at(0, b"GIF89a") {
        Some("image/gif")
    } else if at(0, b"RIFF") && at(8, b"WEBP") {
        Some("image/webp")
    } else if at(4, b"ftyp") {
        if at(8, b"M4A ") {
            Some("audio/mp4")
        } else if at(8, b"qt  ") {
            Some("video/quicktime")
        } else {
            Some("video/mp4")
        }
    } else if at(0, b"OggS") {
        Some(VOICE_MIMETYPE)
    } else if at(0, b"ID3") || at(0, &[0xFF, 0xFB]) || at(0, &[0xFF, 0xF3]) {
        Some("audio/mpeg")
    } else if at(0, b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Validates the request body of `kind` with the default inline-media limit.
pub fn parse(kind: &str, body: &Value) -> Result<Outgoing, ComposeError> {
    parse_with_limit(kind, body, DEFAULT_MAX_INLINE_BYTES)
}

/// Validates the request body of `kind`; inline (`base64`) media over `max_inline_bytes`
/// decoded bytes is [`ComposeError::TooLarge`].
pub fn parse_with_limit(
    kind: &str,
    body: &Value,
    max_inline_bytes: usize,
) -> Result<Outgoing, ComposeError> {
    let media_fields: &[&str] = &["url", "base64", "upload", "mimetype"];
    let fields: Vec<&'static str> = match kind {
        "text" => vec!["text"],
        "image" => [media_fields, &["caption", "width", "height"]].concat(),
        "video" => [
            media_fields,
            &["caption", "gif", "seconds", "width", "height"],
        ]
        .concat(),
        "audio" => [media_fields, &["voice", "seconds"]].concat(),
        "document" => [media_fields, &["file_name", "caption", "page_count"]].concat(),
        "sticker" => [media_fields, &["width", "height"]].concat(),
        "location" => vec!["latitude", "longitude", "name", "address"],
        "contact" => vec!["vcard", "name", "phones"],
        "poll" => vec!["question", "options", "multiple", "selectable_count"],
        "reaction" => vec!["message_id", "emoji", "from_me", "participant"],
        "list" => vec!["text", "button", "sections", "title", "footer"],
        "buttons" => vec!["text", "buttons", "header", "footer"],
        "template" => vec!["text", "buttons", "header", "footer"],
        "link_preview" => vec!["text", "url", "title", "description", "thumbnail_base64"],
        _ => {
            return Err(ComposeError::UnknownKind {
                kind: kind.to_string(),
                known: KINDS,
            });
        }
    };
    let mut allowed = vec!["to"];
    allowed.extend(fields);
    if kind != "reaction" {
        allowed.extend(REPLY_FIELDS);
    }
    if kind == "text" {
        allowed.push("mentions");
    }
    let mut f = Fields::new(String::new(), body, &allowed)?;

    let to_raw = f.req_str("to")?;
    let to = parse_recipient(to_raw)?;
    let reply_to = parse_reply_to(&mut f)?;
    let mentions = parse_mentions(&mut f)?;

    let content = match kind {
        "text" => Content::Text {
            text: f.req_text("text", MAX_TEXT_CHARS)?,
        },
        "image" => {
            let (media, mimetype) = f.media(max_inline_bytes, "image/")?;
            Content::Image {
                media,
                mimetype,
                caption: f.opt_text("caption", MAX_TEXT_CHARS)?,
                width: f.opt_u32("width")?,
                height: f.opt_u32("height")?,
            }
        }
        "video" => {
            let (media, mimetype) = f.media(max_inline_bytes, "video/")?;
            Content::Video {
                media,
                mimetype,
                caption: f.opt_text("caption", MAX_TEXT_CHARS)?,
                gif: f.opt_bool("gif")?.unwrap_or(false),
                seconds: f.opt_u32("seconds")?,
                width: f.opt_u32("width")?,
                height: f.opt_u32("height")?,
            }
        }
        "audio" => {
            let (media, mimetype) = f.media(max_inline_bytes, "audio/")?;
            let voice = f.opt_bool("voice")?.unwrap_or(false);
            if voice
                && let Some(m) = &mimetype
                && !m.to_ascii_lowercase().starts_with("audio/ogg")
            {
                return Err(invalid(
                    "mimetype",
                    format!(
                        "voice notes must be Ogg Opus ('{VOICE_MIMETYPE}'); \
                         phones do not play '{m}' as a voice note"
                    ),
                ));
            }
            Content::Audio {
                media,
                mimetype,
                voice,
                seconds: f.opt_u32("seconds")?,
            }
        }
        "document" => {
            let (media, mimetype) = f.media(max_inline_bytes, "")?;
            let file_name = match f.opt_text("file_name", MAX_NAME_CHARS)? {
                Some(name) if name.contains(['/', '\\']) => {
                    return Err(invalid("file_name", "a file name, without a directory"));
                }
                Some(name) => Some(name),
                None => match &media {
                    MediaSource::Url(url) => file_name_from_url(url),
                    _ => None,
                },
            };
            Content::Document {
                media,
                mimetype,
                file_name,
                caption: f.opt_text("caption", MAX_TEXT_CHARS)?,
                page_count: f.opt_u32("page_count")?,
            }
        }
        "sticker" => {
            let (media, mimetype) = f.media(max_inline_bytes, "image/")?;
            if let Some(m) = mimetype
                && !m.eq_ignore_ascii_case(STICKER_MIMETYPE)
            {
                return Err(invalid(
                    "mimetype",
                    format!("stickers are WebP images ('{STICKER_MIMETYPE}'), not '{m}'"),
                ));
            }
            if let MediaSource::Inline(bytes) = &media
                && sniff_mimetype(bytes) != Some(STICKER_MIMETYPE)
            {
                return Err(invalid(
                    "base64",
                    "stickers are WebP images; this is not one",
                ));
            }
            Content::Sticker {
                media,
                width: f.opt_u32("width")?,
                height: f.opt_u32("height")?,
            }
        }
        "location" => parse_location(&mut f)?,
        "contact" => parse_contact(&mut f)?,
        "poll" => parse_poll(&mut f)?,
        "reaction" => parse_reaction(&mut f, &to)?,
        "list" => parse_list(&mut f)?,
        "buttons" => parse_buttons(&mut f)?,
        "template" => parse_template(&mut f)?,
        "link_preview" => parse_link_preview(&mut f)?,
        _ => {
            return Err(ComposeError::UnknownKind {
                kind: kind.to_string(),
                known: KINDS,
            });
        }
    };
    Ok(Outgoing {
        to,
        content,
        reply_to,
        mentions,
    })
}

/// The reply fields every kind but `reaction` takes.
const REPLY_FIELDS: [&str; 3] = ["reply_to", "reply_to_participant", "reply_to_text"];
/// The most people one text may mention.
pub const MAX_MENTIONS: usize = 256;

/// A message id as WhatsApp (or wagate) writes them: 1-128 letters, digits, `-`, `_`, `.`.
fn valid_message_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// A person (not a group) from a phone number or JID, for `field`.
fn person(field: &str, raw: &str) -> Result<String, ComposeError> {
    let r = parse_recipient(raw).map_err(|e| match e {
        ComposeError::BadRecipient { reason, .. } => invalid(field, reason),
        other => other,
    })?;
    if r.is_group() {
        return Err(invalid(field, "a person, not a group"));
    }
    Ok(r.0)
}

fn parse_reply_to(f: &mut Fields<'_>) -> Result<Option<ReplyTo>, ComposeError> {
    let id = f.opt_str("reply_to")?;
    let participant = f.opt_str("reply_to_participant")?;
    let text = f.opt_text("reply_to_text", MAX_TEXT_CHARS)?;
    let Some(id) = id else {
        if participant.is_some() {
            return Err(invalid("reply_to_participant", "only with reply_to"));
        }
        if text.is_some() {
            return Err(invalid("reply_to_text", "only with reply_to"));
        }
        return Ok(None);
    };
    let id = id.trim();
    if !valid_message_id(id) {
        return Err(invalid(
            "reply_to",
            "a message id (wagate's or WhatsApp's): 1-128 letters, digits, '-', '_' or '.'",
        ));
    }
    let participant = participant
        .map(|p| person("reply_to_participant", p))
        .transpose()?;
    Ok(Some(ReplyTo {
        message_id: id.to_string(),
        participant,
        text,
    }))
}

fn parse_mentions(f: &mut Fields<'_>) -> Result<Vec<String>, ComposeError> {
    let Some(list) = f.opt_array("mentions")? else {
        return Ok(Vec::new());
    };
    if list.len() > MAX_MENTIONS {
        return Err(invalid(
            "mentions",
            format!("at most {MAX_MENTIONS} people"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let field = format!("mentions[{i}]");
        let Value::String(raw) = v else {
            return Err(invalid(field, "expected a phone number or a person JID"));
        };
        let jid = person(&field, raw)?;
        if !out.contains(&jid) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// Parses a recipient: a phone number with its country code (`+44 7700 900123`; spaces,
/// dashes and parentheses are dropped) or the JID of a person (`@s.whatsapp.net`, `@lid`) or
/// group (`@g.us`).
pub fn parse_recipient(raw: &str) -> Result<Recipient, ComposeError> {
    let s = raw.trim();
    let bad = |reason: &'static str| ComposeError::BadRecipient {
        to: raw.to_string(),
        reason,
    };
    if !s.contains('@') {
        let digits = normalize_phone(s).ok_or_else(|| {
            bad("expected a phone number with its country code (7-15 digits) or a chat JID")
        })?;
        return Ok(Recipient(format!("{digits}@s.whatsapp.net")));
    }
    let jid: Jid = s.parse().map_err(|_| bad("not a valid JID"))?;
    if jid.device != 0 || jid.agent != 0 || jid.integrator != 0 {
        return Err(bad("a device JID; send to the chat JID, without ':device'"));
    }
    let user = jid.user.as_str();
    let digits = |u: &str| !u.is_empty() && u.bytes().all(|b| b.is_ascii_digit());
    match jid.server {
        Server::Pn if digits(user) && (7..=15).contains(&user.len()) && !user.starts_with('0') => {}
        Server::Pn => return Err(bad("the phone number in the JID is not 7-15 digits")),
        Server::Lid if digits(user) => {}
        Server::Lid => return Err(bad("a @lid JID has digits before the '@'")),
        Server::Group
            if !user.is_empty() && user.split('-').count() <= 2 && user.split('-').all(digits) => {}
        Server::Group => {
            return Err(bad(
                "a @g.us JID has digits (or digits-digits) before the '@'",
            ));
        }
        _ => {
            return Err(bad(
                "wagate sends to @s.whatsapp.net, @lid and @g.us chats only",
            ));
        }
    }
    Ok(Recipient(jid.to_string()))
}

fn parse_location(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let latitude = f.req_f64("latitude")?;
    if !(-90.0..=90.0).contains(&latitude) {
        return Err(invalid("latitude", "degrees between -90 and 90"));
    }
    let longitude = f.req_f64("longitude")?;
    if !(-180.0..=180.0).contains(&longitude) {
        return Err(invalid("longitude", "degrees between -180 and 180"));
    }
    Ok(Content::Location {
        latitude,
        longitude,
        name: f.opt_text("name", MAX_NAME_CHARS)?,
        address: f.opt_text("address", MAX_NAME_CHARS)?,
    })
}

fn parse_contact(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let name = f.opt_text("name", MAX_NAME_CHARS)?;
    let phones = f.opt_array("phones")?;
    match f.opt_text("vcard", MAX_VCARD_CHARS)? {
        Some(vcard) => {
            if phones.is_some() {
                return Err(invalid(
                    "phones",
                    "give either 'vcard' or 'name' and 'phones', not both",
                ));
            }
            let first = vcard.lines().next().unwrap_or("").trim();
            if !first.eq_ignore_ascii_case("BEGIN:VCARD") {
                return Err(invalid("vcard", "a vCard starts with 'BEGIN:VCARD'"));
            }
            if !vcard
                .lines()
                .any(|l| l.trim().eq_ignore_ascii_case("END:VCARD"))
            {
                return Err(invalid("vcard", "a vCard ends with 'END:VCARD'"));
            }
            let display_name = match name.or_else(|| vcard_full_name(&vcard)) {
                Some(n) => n,
                None => {
                    return Err(invalid(
                        "vcard",
                        "has no FN (full name) line; add one or give 'name'",
                    ));
                }
            };
            Ok(Content::Contact {
                display_name,
                vcard,
            })
        }
        None => {
            let Some(name) = name else {
                return Err(ComposeError::Missing {
                    field: if phones.is_some() { "name" } else { "vcard" }.into(),
                });
            };
            let Some(phones) = phones else {
                return Err(ComposeError::Missing {
                    field: "phones".into(),
                });
            };
            if phones.is_empty() {
                return Err(invalid("phones", "at least one phone number"));
            }
            if phones.len() > 10 {
                return Err(invalid("phones", "at most 10 phone numbers"));
            }
            let mut numbers = Vec::with_capacity(phones.len());
            for (i, p) in phones.iter().enumerate() {
                let field = format!("phones[{i}]");
                let raw = p
                    .as_str()
                    .ok_or_else(|| invalid(&field, "expected a string"))?;
                let digits = normalize_phone(raw).ok_or_else(|| {
                    invalid(&field, "a phone number with its country code, 7-15 digits")
                })?;
                numbers.push(digits);
            }
            Ok(Content::Contact {
                vcard: build_vcard(&name, &numbers),
                display_name: name,
            })
        }
    }
}

/// A vCard 3.0 for a name and phone numbers (digits with country code). `waid` makes the
/// "Message" button on the contact card open a WhatsApp chat with that number.
pub fn build_vcard(name: &str, phones: &[String]) -> String {
    let name = vcard_escape(name);
    let mut v = format!("BEGIN:VCARD\r\nVERSION:3.0\r\nN:;{name};;;\r\nFN:{name}\r\n");
    for digits in phones {
        v.push_str(&format!("TEL;type=CELL;waid={digits}:+{digits}\r\n"));
    }
    v.push_str("END:VCARD");
    v
}

fn vcard_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// The FN value of a vCard (`FN:` or `FN;params:`), unescaped.
fn vcard_full_name(vcard: &str) -> Option<String> {
    vcard.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let key = key.split(';').next()?.trim();
        let key = key.rsplit('.').next()?; // grouped properties: item1.FN
        if !key.eq_ignore_ascii_case("FN") {
            return None;
        }
        let value = value
            .trim()
            .replace("\\,", ",")
            .replace("\\;", ";")
            .replace("\\n", " ")
            .replace("\\\\", "\\");
        (!value.is_empty()).then_some(value)
    })
}

fn parse_poll(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let question = f.req_text("question", MAX_POLL_QUESTION_CHARS)?;
    let raw = f.req_array("options")?;
    if raw.len() < 2 || raw.len() > MAX_POLL_OPTIONS {
        return Err(invalid(
            "options",
            format!("2 to {MAX_POLL_OPTIONS} options, not {}", raw.len()),
        ));
    }
    let mut options = Vec::with_capacity(raw.len());
    let mut seen = HashSet::new();
    for (i, v) in raw.iter().enumerate() {
        let field = format!("options[{i}]");
        let text = text_value(&field, v, MAX_POLL_OPTION_CHARS)?;
        if !seen.insert(text.clone()) {
            return Err(invalid(
                &field,
                format!("'{text}' is already an option; options must differ"),
            ));
        }
        options.push(text);
    }
    let multiple = f.opt_bool("multiple")?;
    let count = f.opt_u32("selectable_count")?;
    let selectable_count = match (multiple, count) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "selectable_count",
                "give either 'multiple' or 'selectable_count', not both",
            ));
        }
        (Some(true), None) => 0,
        (Some(false) | None, None) => 1,
        (None, Some(n)) if n as usize <= options.len() => n,
        (None, Some(n)) => {
            return Err(invalid(
                "selectable_count",
                format!(
                    "0 (any number) to {} (the number of options), not {n}",
                    options.len()
                ),
            ));
        }
    };
    Ok(Content::Poll {
        question,
        options,
        selectable_count,
    })
}

fn parse_reaction(f: &mut Fields<'_>, to: &Recipient) -> Result<Content, ComposeError> {
    let message_id = f.req_str("message_id")?.trim().to_string();
    if message_id.is_empty()
        || message_id.len() > 128
        || !message_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(invalid(
            "message_id",
            "a WhatsApp message id: 1-128 letters, digits, '-', '_' or '.'",
        ));
    }
    let emoji = f.req_str("emoji")?.trim().to_string();
    if emoji.chars().count() > 16
        || emoji
            .chars()
            .any(|c| c.is_ascii_alphanumeric() || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "emoji",
            "one emoji, or \"\" to remove the reaction",
        ));
    }
    let from_me = f.opt_bool("from_me")?.unwrap_or(false);
    let participant = match f.opt_str("participant")? {
        Some(p) => {
            if !to.is_group() {
                return Err(invalid("participant", "only for messages in group chats"));
            }
            let r = parse_recipient(p).map_err(|e| match e {
                ComposeError::BadRecipient { reason, .. } => invalid("participant", reason),
                other => other,
            })?;
            if r.is_group() {
                return Err(invalid("participant", "a person, not a group"));
            }
            Some(r.0)
        }
        None if to.is_group() && !from_me => {
            return Err(ComposeError::Missing {
                field: "participant".into(),
            });
        }
        None => None,
    };
    Ok(Content::Reaction {
        chat: to.0.clone(),
        message_id,
        emoji,
        from_me,
        participant,
    })
}

fn parse_list(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let text = f.req_text("text", MAX_BODY_CHARS)?;
    let button = f.req_text("button", MAX_BUTTON_TITLE_CHARS)?;
    let title = f.opt_text("title", MAX_HEADER_CHARS)?;
    let footer = f.opt_text("footer", MAX_FOOTER_CHARS)?;
    let raw = f.req_array("sections")?;
    if raw.is_empty() || raw.len() > MAX_LIST_SECTIONS {
        return Err(invalid(
            "sections",
            format!("1 to {MAX_LIST_SECTIONS} sections, not {}", raw.len()),
        ));
    }
    let mut sections = Vec::with_capacity(raw.len());
    let mut ids = HashSet::new();
    let mut total_rows = 0;
    for (i, v) in raw.iter().enumerate() {
        let path = format!("sections[{i}]");
        let mut s = Fields::new(path.clone(), v, &["title", "rows"])?;
        let title = s.opt_text("title", MAX_SECTION_TITLE_CHARS)?;
        if title.is_none() && raw.len() > 1 {
            return Err(ComposeError::Missing {
                field: s.path("title"),
            });
        }
        let rows_raw = s.req_array("rows")?;
        if rows_raw.is_empty() {
            return Err(invalid(s.path("rows"), "at least one row"));
        }
        let mut rows = Vec::with_capacity(rows_raw.len());
        for (j, rv) in rows_raw.iter().enumerate() {
            let mut r = Fields::new(
                format!("{path}.rows[{j}]"),
                rv,
                &["id", "title", "description"],
            )?;
            let id = r.req_text("id", MAX_ID_CHARS)?;
            if !ids.insert(id.clone()) {
                return Err(invalid(
                    r.path("id"),
                    format!("'{id}' is already a row id; row ids must differ"),
                ));
            }
            rows.push(ListRow {
                id,
                title: r.req_text("title", MAX_ROW_TITLE_CHARS)?,
                description: r.opt_text("description", MAX_ROW_DESCRIPTION_CHARS)?,
            });
            total_rows += 1;
            if total_rows > MAX_LIST_ROWS {
                return Err(invalid(
                    format!("{path}.rows[{j}]"),
                    format!("a list has at most {MAX_LIST_ROWS} rows in all its sections"),
                ));
            }
        }
        sections.push(ListSection { title, rows });
    }
    Ok(Content::List {
        text,
        button,
        sections,
        title,
        footer,
    })
}

fn parse_buttons(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let text = f.req_text("text", MAX_BODY_CHARS)?;
    let header = f.opt_text("header", MAX_HEADER_CHARS)?;
    let footer = f.opt_text("footer", MAX_FOOTER_CHARS)?;
    let raw = button_array(f)?;
    let mut buttons = Vec::with_capacity(raw.len());
    let mut ids = HashSet::new();
    for (i, v) in raw.iter().enumerate() {
        let mut b = Fields::new(format!("buttons[{i}]"), v, &["id", "title"])?;
        let id = b.req_text("id", MAX_ID_CHARS)?;
        if !ids.insert(id.clone()) {
            return Err(invalid(
                b.path("id"),
                format!("'{id}' is already a button id; button ids must differ"),
            ));
        }
        buttons.push(ReplyButton {
            id,
            title: b.req_text("title", MAX_BUTTON_TITLE_CHARS)?,
        });
    }
    Ok(Content::Buttons {
        text,
        buttons,
        header,
        footer,
    })
}

fn parse_template(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let text = f.req_text("text", MAX_BODY_CHARS)?;
    let header = f.opt_text("header", MAX_HEADER_CHARS)?;
    let footer = f.opt_text("footer", MAX_FOOTER_CHARS)?;
    let raw = button_array(f)?;
    let mut buttons = Vec::with_capacity(raw.len());
    let mut ids = HashSet::new();
    for (i, v) in raw.iter().enumerate() {
        let path = format!("buttons[{i}]");
        let ty = match v.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Null) | None => {
                return Err(ComposeError::Missing {
                    field: format!("{path}.type"),
                });
            }
            Some(_) => return Err(invalid(format!("{path}.type"), "expected a string")),
        };
        let button = match ty {
            "url" => {
                let mut b = Fields::new(path, v, &["type", "title", "url"])?;
                let title = b.req_text("title", MAX_BUTTON_TITLE_CHARS)?;
                let url = check_url(&b.path("url"), b.req_str("url")?)?;
                TemplateButton::Url { title, url }
            }
            "call" => {
                let mut b = Fields::new(path, v, &["type", "title", "phone"])?;
                let title = b.req_text("title", MAX_BUTTON_TITLE_CHARS)?;
                let field = b.path("phone");
                let phone = normalize_phone(b.req_str("phone")?).ok_or_else(|| {
                    invalid(field, "a phone number with its country code, 7-15 digits")
                })?;
                TemplateButton::Call { title, phone }
            }
            "quick_reply" => {
                let mut b = Fields::new(path, v, &["type", "id", "title"])?;
                let id = b.req_text("id", MAX_ID_CHARS)?;
                if !ids.insert(id.clone()) {
                    return Err(invalid(
                        b.path("id"),
                        format!("'{id}' is already a button id; button ids must differ"),
                    ));
                }
                let title = b.req_text("title", MAX_BUTTON_TITLE_CHARS)?;
                TemplateButton::QuickReply { id, title }
            }
            other => {
                return Err(invalid(
                    format!("{path}.type"),
                    format!("'{other}' is not a button type; use url, call or quick_reply"),
                ));
            }
        };
        buttons.push(button);
    }
    Ok(Content::Template {
        text,
        buttons,
        header,
        footer,
    })
}

fn button_array<'a>(f: &mut Fields<'a>) -> Result<&'a Vec<Value>, ComposeError> {
    let raw = f.req_array("buttons")?;
    if raw.is_empty() || raw.len() > MAX_BUTTONS {
        return Err(invalid(
            "buttons",
            format!("1 to {MAX_BUTTONS} buttons, not {}", raw.len()),
        ));
    }
    Ok(raw)
}

fn parse_link_preview(f: &mut Fields<'_>) -> Result<Content, ComposeError> {
    let text = f.req_text("text", MAX_TEXT_CHARS)?;
    let url = check_url("url", f.req_str("url")?)?;
    let title = f.opt_text("title", MAX_NAME_CHARS)?;
    let description = f.opt_text("description", MAX_NAME_CHARS * 4)?;
    let thumbnail = match f.opt_str("thumbnail_base64")? {
        Some(s) => {
            let (bytes, _) = decode_base64("thumbnail_base64", s, MAX_THUMBNAIL_BYTES)?;
            if sniff_mimetype(&bytes) != Some("image/jpeg") {
                return Err(invalid("thumbnail_base64", "the thumbnail must be a JPEG"));
            }
            Some(bytes)
        }
        None => None,
    };
    let text = if text.contains(&url) {
        text
    } else {
        format!("{text}\n{url}")
    };
    Ok(Content::LinkPreview {
        text,
        url,
        title,
        description,
        thumbnail,
    })
}

/// An `http`/`https` URL with a host, no spaces, at most 2048 characters.
fn check_url(field: &str, raw: &str) -> Result<String, ComposeError> {
    let url = raw.trim();
    let rest = url
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
        .or_else(|| {
            url.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("http://"))
                .map(|_| &url[7..])
        })
        .ok_or_else(|| invalid(field, "an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || host.starts_with('@') {
        return Err(invalid(field, "the URL has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            "the URL contains spaces or control characters",
        ));
    }
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid(
            field,
            format!("at most {MAX_URL_CHARS} characters"),
        ));
    }
    Ok(url.to_string())
}

/// The last path segment of a URL, as a document's file name, when it looks like one.
fn file_name_from_url(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next()?;
    let after_scheme = path.split_once("://")?.1;
    let (_, path) = after_scheme.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name.len() <= MAX_NAME_CHARS && !name.contains('%'))
        .then(|| name.to_string())
}

/// Standard base64 with or without padding, line breaks allowed, or a `data:` URL (whose
/// mimetype is returned). Decoded size over `limit` is `TooLarge`, checked before decoding.
fn decode_base64(
    field: &str,
    raw: &str,
    limit: usize,
) -> Result<(Vec<u8>, Option<String>), ComposeError> {
    let (data, mime) = match raw.strip_prefix("data:") {
        Some(rest) => {
            let (header, data) = rest
                .split_once(',')
                .ok_or_else(|| invalid(field, "a data: URL needs a ','"))?;
            let mime = header
                .strip_suffix(";base64")
                .ok_or_else(|| invalid(field, "only base64 data: URLs are taken"))?;
            (data, (!mime.is_empty()).then(|| mime.to_string()))
        }
        None => (raw, None),
    };
    let estimate = data.len() / 4 * 3;
    if estimate > limit.saturating_add(3) {
        return Err(ComposeError::TooLarge {
            field: field.to_string(),
            size: estimate,
            limit,
        });
    }
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let decoded = if data.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        ENGINE.decode(compact)
    } else {
        ENGINE.decode(data)
    }
    .map_err(|e| invalid(field, format!("not valid base64: {e}")))?;
    if decoded.is_empty() {
        return Err(invalid(field, "no data"));
    }
    if decoded.len() > limit {
        return Err(ComposeError::TooLarge {
            field: field.to_string(),
            size: decoded.len(),
            limit,
        });
    }
    Ok((decoded, mime))
}

/// `type/subtype` with optional `; parameters`.
fn check_mimetype(field: &str, raw: &str, family: &str) -> Result<String, ComposeError> {
    let m = raw.trim();
    let essence = m.split(';').next().unwrap_or("").trim();
    let valid_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((ty, sub)) if valid_token(ty) && valid_token(sub) && m.len() <= 100 => {}
        _ => return Err(invalid(field, "a mimetype like 'image/jpeg'")),
    }
    if !essence.to_ascii_lowercase().starts_with(family) {
        return Err(invalid(
            field,
            format!("'{essence}' is not a {}* type", family),
        ));
    }
    Ok(m.to_string())
}

/// Reads one JSON object: refuses fields not in its list up front (so a typo is reported as
/// itself, not as the required field it misses), then hands out typed values; `null` counts
/// as absent.
struct Fields<'a> {
    prefix: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(prefix: String, value: &'a Value, allowed: &[&str]) -> Result<Self, ComposeError> {
        let Value::Object(map) = value else {
            let field = if prefix.is_empty() { "body" } else { &prefix };
            return Err(invalid(field, "expected a JSON object"));
        };
        let f = Fields { prefix, map };
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(invalid(
                f.path(key),
                format!("unknown field; the fields here are: {}", allowed.join(", ")),
            ));
        }
        Ok(f)
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> ComposeError {
        ComposeError::Missing {
            field: self.path(key),
        }
    }

    fn opt_str(&mut self, key: &str) -> Result<Option<&'a str>, ComposeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(self.path(key), "expected a string")),
        }
    }

    fn req_str(&mut self, key: &str) -> Result<&'a str, ComposeError> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }

    /// A string that is not blank, at most `max` characters.
    fn opt_text(&mut self, key: &str, max: usize) -> Result<Option<String>, ComposeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => text_value(&self.path(key), v, max).map(Some),
        }
    }

    fn req_text(&mut self, key: &str, max: usize) -> Result<String, ComposeError> {
        self.opt_text(key, max)?.ok_or_else(|| self.missing(key))
    }

    fn opt_bool(&mut self, key: &str) -> Result<Option<bool>, ComposeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(self.path(key), "expected true or false")),
        }
    }

    fn opt_u32(&mut self, key: &str) -> Result<Option<u32>, ComposeError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| invalid(self.path(key), "expected a whole number, 0 or more")),
        }
    }

    fn req_f64(&mut self, key: &str) -> Result<f64, ComposeError> {
        match self.get(key) {
            None => Err(self.missing(key)),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| invalid(self.path(key), "expected a number")),
        }
    }

    fn opt_array(&mut self, key: &str) -> Result<Option<&'a Vec<Value>>, ComposeError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(invalid(self.path(key), "expected an array")),
        }
    }

    fn req_array(&mut self, key: &str) -> Result<&'a Vec<Value>, ComposeError> {
        self.opt_array(key)?.ok_or_else(|| self.missing(key))
    }

    /// Exactly one of `url`, `base64`, `upload`, plus an optional `mimetype` of `family`
    /// (`"image/"`, or `""` for any). A `data:` URL's mimetype fills in an absent one.
    fn media(
        &mut self,
        max_inline: usize,
        family: &str,
    ) -> Result<(MediaSource, Option<String>), ComposeError> {
        let url = self.opt_str("url")?;
        let b64 = self.opt_str("base64")?;
        let upload = self.opt_str("upload")?;
        let mut mimetype = match self.opt_str("mimetype")? {
            Some(m) => Some(check_mimetype("mimetype", m, family)?),
            None => None,
        };
        let given: Vec<&str> = [("url", url), ("base64", b64), ("upload", upload)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, _)| *k)
            .collect();
        if given.len() > 1 {
            return Err(invalid(
                given[1],
                format!(
                    "give exactly one of url, base64 or upload, not both {} and {}",
                    given[0], given[1]
                ),
            ));
        }
        let source = match (url, b64, upload) {
            (Some(u), _, _) => MediaSource::Url(check_url("url", u)?),
            (_, Some(b), _) => {
                let (bytes, data_mime) = decode_base64("base64", b, max_inline)?;
                if mimetype.is_none()
                    && let Some(m) = data_mime
                {
                    mimetype = Some(check_mimetype("base64", &m, family)?);
                }
                MediaSource::Inline(bytes)
            }
            (_, _, Some(id)) => {
                let id = id.trim();
                if id.is_empty()
                    || id.len() > 64
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    return Err(invalid(
                        "upload",
                        "an upload id: 1-64 letters, digits, '_' or '-'",
                    ));
                }
                MediaSource::Upload(id.to_string())
            }
            (None, None, None) => {
                return Err(ComposeError::Missing {
                    field: "url | base64 | upload".into(),
                });
            }
        };
        Ok((source, mimetype))
    }
}

/// A JSON string that is not blank, at most `max` characters, trimmed at the ends.
fn text_value(field: &str, v: &Value, max: usize) -> Result<String, ComposeError> {
    let Value::String(s) = v else {
        return Err(invalid(field, "expected a string"));
    };
    let s = s.trim();
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(invalid(field, format!("at most {max} characters, not {n}")));
    }
    Ok(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------------------------

/// Uploaded media, as whatsapp-rust's `UploadResponse` describes it, plus the mimetype the
/// message announces. Serializable so a sender can keep it beside a queued message and
/// retry without uploading again (bytes as base64).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedMedia {
    pub url: String,
    pub direct_path: String,
    #[serde(with = "b64")]
    pub media_key: [u8; 32],
    #[serde(with = "b64")]
    pub file_enc_sha256: [u8; 32],
    #[serde(with = "b64")]
    pub file_sha256: [u8; 32],
    pub file_length: u64,
    /// Unix seconds.
    pub media_key_timestamp: i64,
    pub mimetype: String,
    /// Seek table for audio and video.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_opt")]
    pub streaming_sidecar: Option<Vec<u8>>,
}

impl UploadedMedia {
    pub fn new(upload: whatsapp_rust::upload::UploadResponse, mimetype: impl Into<String>) -> Self {
        UploadedMedia {
            url: upload.url,
            direct_path: upload.direct_path,
            media_key: upload.media_key,
            file_enc_sha256: upload.file_enc_sha256,
            file_sha256: upload.file_sha256,
            file_length: upload.file_length,
            media_key_timestamp: upload.media_key_timestamp,
            mimetype: mimetype.into(),
            streaming_sidecar: upload.streaming_sidecar,
        }
    }
}

impl std::fmt::Debug for UploadedMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadedMedia")
            .field("direct_path", &self.direct_path)
            .field("media_key", &"<redacted>")
            .field("file_length", &self.file_length)
            .field("mimetype", &self.mimetype)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/// The protocol message for `content`. Media kinds need the `media` their bytes were
/// uploaded as; the other kinds take none.
///
/// Not quite pure: a poll gets a fresh random `message_secret` (the sender should keep it,
/// from `message_context_info.message_secret`, to decrypt votes later) and a reaction the
/// current time as `sender_timestamp_ms`. In Community announcement groups reactions must go
/// encrypted through `Client::send_reaction` (see [`reaction_target`]); a plain
/// `reaction_message` is what every other chat takes.
pub fn build(
    content: &Content,
    media: Option<&UploadedMedia>,
) -> Result<wa::Message, ComposeError> {
    let kind = content.kind();
    let needs_media = content.media().is_some();
    let media = match (needs_media, media) {
        (true, Some(m)) => Some(m),
        (false, None) => None,
        _ => return Err(ComposeError::MediaMismatch { kind, needs_media }),
    };
    let msg = match (content, media) {
        (Content::Text { text }, _) => wa::Message {
            conversation: Some(text.clone()),
            ..Default::default()
        },
        (
            Content::Image {
                caption,
                width,
                height,
                ..
            },
            Some(m),
        ) => wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                url: Some(m.url.clone()),
                mimetype: Some(m.mimetype.clone()),
                caption: caption.clone(),
                file_sha256: Some(m.file_sha256.to_vec()),
                file_length: Some(m.file_length),
                height: *height,
                width: *width,
                media_key: Some(m.media_key.to_vec()),
                file_enc_sha256: Some(m.file_enc_sha256.to_vec()),
                direct_path: Some(m.direct_path.clone()),
                media_key_timestamp: Some(m.media_key_timestamp),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Video {
                caption,
                gif,
                seconds,
                width,
                height,
                ..
            },
            Some(m),
        ) => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                url: Some(m.url.clone()),
                mimetype: Some(m.mimetype.clone()),
                file_sha256: Some(m.file_sha256.to_vec()),
                file_length: Some(m.file_length),
                seconds: *seconds,
                media_key: Some(m.media_key.to_vec()),
                caption: caption.clone(),
                gif_playback: gif.then_some(true),
                height: *height,
                width: *width,
                file_enc_sha256: Some(m.file_enc_sha256.to_vec()),
                direct_path: Some(m.direct_path.clone()),
                media_key_timestamp: Some(m.media_key_timestamp),
                streaming_sidecar: m.streaming_sidecar.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        (Content::Audio { voice, seconds, .. }, Some(m)) => wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                url: Some(m.url.clone()),
                mimetype: Some(m.mimetype.clone()),
                file_sha256: Some(m.file_sha256.to_vec()),
                file_length: Some(m.file_length),
                seconds: *seconds,
                ptt: Some(*voice),
                media_key: Some(m.media_key.to_vec()),
                file_enc_sha256: Some(m.file_enc_sha256.to_vec()),
                direct_path: Some(m.direct_path.clone()),
                media_key_timestamp: Some(m.media_key_timestamp),
                streaming_sidecar: m.streaming_sidecar.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Document {
                file_name,
                caption,
                page_count,
                ..
            },
            Some(m),
        ) => {
            let name = file_name.clone().unwrap_or_else(|| "document".to_string());
            let doc = wa::message::DocumentMessage {
                url: Some(m.url.clone()),
                mimetype: Some(m.mimetype.clone()),
                title: Some(name.clone()),
                file_sha256: Some(m.file_sha256.to_vec()),
                file_length: Some(m.file_length),
                page_count: *page_count,
                media_key: Some(m.media_key.to_vec()),
                file_name: Some(name),
                file_enc_sha256: Some(m.file_enc_sha256.to_vec()),
                direct_path: Some(m.direct_path.clone()),
                media_key_timestamp: Some(m.media_key_timestamp),
                caption: caption.clone(),
                ..Default::default()
            };
            let inner = wa::Message {
                document_message: MessageField::some(doc),
                ..Default::default()
            };
            if caption.is_some() {
                // What WhatsApp's own clients send for a captioned document.
                wa::Message {
                    document_with_caption_message: MessageField::some(
                        wa::message::FutureProofMessage {
                            message: MessageField::some(inner),
                        },
                    ),
                    ..Default::default()
                }
            } else {
                inner
            }
        }
        (Content::Sticker { width, height, .. }, Some(m)) => wa::Message {
            sticker_message: MessageField::some(wa::message::StickerMessage {
                url: Some(m.url.clone()),
                file_sha256: Some(m.file_sha256.to_vec()),
                file_enc_sha256: Some(m.file_enc_sha256.to_vec()),
                media_key: Some(m.media_key.to_vec()),
                mimetype: Some(m.mimetype.clone()),
                height: *height,
                width: *width,
                direct_path: Some(m.direct_path.clone()),
                file_length: Some(m.file_length),
                media_key_timestamp: Some(m.media_key_timestamp),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Location {
                latitude,
                longitude,
                name,
                address,
            },
            _,
        ) => wa::Message {
            location_message: MessageField::some(wa::message::LocationMessage {
                degrees_latitude: Some(*latitude),
                degrees_longitude: Some(*longitude),
                name: name.clone(),
                address: address.clone(),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Contact {
                display_name,
                vcard,
            },
            _,
        ) => wa::Message {
            contact_message: MessageField::some(wa::message::ContactMessage {
                display_name: Some(display_name.clone()),
                vcard: Some(vcard.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Poll {
                question,
                options,
                selectable_count,
            },
            _,
        ) => build_poll(question, options, *selectable_count, random_secret()),
        (
            Content::Reaction {
                chat,
                message_id,
                emoji,
                from_me,
                participant,
            },
            _,
        ) => wacore::proto_helpers::build_reaction_message(
            target_key(chat, message_id, *from_me, participant.as_deref()),
            emoji.clone(),
            wacore::time::now_millis(),
        ),
        (
            Content::List {
                text,
                button,
                sections,
                title,
                footer,
            },
            _,
        ) => {
            let sections: Vec<Value> = sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            let mut row = serde_json::json!({ "id": r.id, "title": r.title });
                            if let Some(d) = &r.description {
                                row["description"] = Value::from(d.as_str());
                            }
                            row
                        })
                        .collect();
                    let mut section = serde_json::json!({ "rows": rows });
                    if let Some(t) = &s.title {
                        section["title"] = Value::from(t.as_str());
                    }
                    section
                })
                .collect();
            let params = serde_json::json!({ "title": button, "sections": sections });
            interactive(
                title.as_deref(),
                text,
                footer.as_deref(),
                vec![native_button("single_select", &params)],
            )
        }
        (
            Content::Buttons {
                text,
                buttons,
                header,
                footer,
            },
            _,
        ) => interactive(
            header.as_deref(),
            text,
            footer.as_deref(),
            buttons
                .iter()
                .map(|b| {
                    native_button(
                        "quick_reply",
                        &serde_json::json!({ "display_text": b.title, "id": b.id }),
                    )
                })
                .collect(),
        ),
        (
            Content::Template {
                text,
                buttons,
                header,
                footer,
            },
            _,
        ) => interactive(
            header.as_deref(),
            text,
            footer.as_deref(),
            buttons
                .iter()
                .map(|b| match b {
                    TemplateButton::Url { title, url } => native_button(
                        "cta_url",
                        &serde_json::json!({
                            "display_text": title, "url": url, "merchant_url": url
                        }),
                    ),
                    TemplateButton::Call { title, phone } => native_button(
                        "cta_call",
                        &serde_json::json!({
                            "display_text": title, "phone_number": format!("+{phone}")
                        }),
                    ),
                    TemplateButton::QuickReply { id, title } => native_button(
                        "quick_reply",
                        &serde_json::json!({ "display_text": title, "id": id }),
                    ),
                })
                .collect(),
        ),
        (
            Content::LinkPreview {
                text,
                url,
                title,
                description,
                thumbnail,
            },
            _,
        ) => wa::Message {
            extended_text_message: MessageField::some(wa::message::ExtendedTextMessage {
                text: Some(text.clone()),
                matched_text: Some(url.clone()),
                title: title.clone(),
                description: description.clone(),
                jpeg_thumbnail: thumbnail.clone(),
                preview_type: Some(wa::message::extended_text_message::PreviewType::NONE),
                ..Default::default()
            }),
            ..Default::default()
        },
        (
            Content::Edit {
                chat,
                message_id,
                target_kind,
                text,
                ..
            },
            _,
        ) => protocol_message(
            chat,
            message_id,
            wa::message::protocol_message::Type::MESSAGE_EDIT,
            Some(edited_content(target_kind, text)),
        ),
        (
            Content::Revoke {
                chat, message_id, ..
            },
            _,
        ) => protocol_message(
            chat,
            message_id,
            wa::message::protocol_message::Type::REVOKE,
            None,
        ),
        // Media kinds without media were refused above.
        (_, None) => return Err(ComposeError::MediaMismatch { kind, needs_media }),
    };
    Ok(msg)
}

/// The kinds whose text (or caption) can be edited, and the field a `PATCH` names.
pub const EDITABLE: &[(&str, &str)] = &[
    ("text", "text"),
    ("link_preview", "text"),
    ("image", "caption"),
    ("video", "caption"),
];

/// How long after a message WhatsApp's apps offer to edit it: 15 minutes. An edit is
/// accepted within this.
pub const EDIT_WINDOW_MS: i64 = 15 * 60 * 1000;
/// Recipients drop an edit sent this long or more after its message (whatsapp-rust's
/// `EDIT_PROCESSING_WINDOW_SECS`, whatsmeow's `EditWindow`: 20 minutes). A queued edit
/// that could not go before this fails instead of going out to be ignored.
pub const EDIT_DROPPED_AFTER_MS: i64 = 20 * 60 * 1000;
/// How long after a message WhatsApp's apps offer "delete for everyone": 2 days and 12
/// hours (since 2022).
pub const REVOKE_WINDOW_MS: i64 = 60 * 3600 * 1000;

/// An edit's new content: the text of a text message, the caption of an image or video.
fn edited_content(target_kind: &str, text: &str) -> wa::Message {
    match target_kind {
        "image" => wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: Some(text.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        "video" => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                caption: Some(text.to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        _ => wa::Message {
            conversation: Some(text.to_string()),
            ..Default::default()
        },
    }
}

/// A `protocolMessage` about this session's message `message_id` in `chat` (an edit or a
/// revoke). whatsapp-rust gives the stanza its `edit` attribute ("1" edit, "7" revoke by its
/// sender) from this content.
fn protocol_message(
    chat: &str,
    message_id: &str,
    ty: wa::message::protocol_message::Type,
    edited: Option<wa::Message>,
) -> wa::Message {
    let timestamp_ms = edited.is_some().then(wacore::time::now_millis);
    wa::Message {
        protocol_message: MessageField::some(wa::message::ProtocolMessage {
            key: MessageField::some(target_key(chat, message_id, true, None)),
            r#type: Some(ty),
            edited_message: edited.map(MessageField::some).unwrap_or_default(),
            timestamp_ms,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The context info of a reply and/or mentions: the quoted message's WhatsApp id, its author
/// and content (when known), and the mentioned JIDs.
pub fn context_info(
    stanza_id: Option<&str>,
    participant: Option<&str>,
    quoted: Option<wa::Message>,
    mentions: &[String],
) -> wa::ContextInfo {
    wa::ContextInfo {
        stanza_id: stanza_id.map(str::to_string),
        participant: participant.map(str::to_string),
        quoted_message: quoted.map(MessageField::some).unwrap_or_default(),
        mentioned_jid: mentions.to_vec(),
        ..Default::default()
    }
}

/// `msg` (as [`build`] made it) carrying `ctx`: on the inner message of its kind. Bare text
/// (`conversation`) becomes an `extended_text_message`, the form that carries context. A
/// reaction has no context and comes back unchanged.
pub fn with_context(mut msg: wa::Message, ctx: wa::ContextInfo) -> wa::Message {
    fn merge(slot: &mut MessageField<wa::ContextInfo>, ctx: wa::ContextInfo) {
        let mut merged = slot.as_option().cloned().unwrap_or_default();
        merged.stanza_id = ctx.stanza_id;
        merged.participant = ctx.participant;
        merged.quoted_message = ctx.quoted_message;
        merged.mentioned_jid = ctx.mentioned_jid;
        *slot = MessageField::some(merged);
    }
    if let Some(text) = msg.conversation.take() {
        msg.extended_text_message = MessageField::some(wa::message::ExtendedTextMessage {
            text: Some(text),
            ..Default::default()
        });
    }
    if let Some(m) = msg.extended_text_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.image_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.video_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.audio_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.document_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg
        .document_with_caption_message
        .as_option_mut()
        .and_then(|w| w.message.as_option_mut())
        .and_then(|inner| inner.document_message.as_option_mut())
    {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.sticker_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.location_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.contact_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.poll_creation_message_v3.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.poll_creation_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    } else if let Some(m) = msg.interactive_message.as_option_mut() {
        merge(&mut m.context_info, ctx);
    }
    msg
}

/// What a quote of a message this session sent shows: its text, or for media its kind,
/// mimetype and caption (the quote has no thumbnail: the uploaded media is not kept).
/// `None` for a reaction, which is not a message bubble.
pub fn quoted_content(content: &Content) -> Option<wa::Message> {
    let caption = |c: &Option<String>| c.clone();
    let mimetype = content.mimetype().map(str::to_string);
    Some(match content {
        Content::Reaction { .. } => return None,
        Content::Image { caption: c, .. } => wa::Message {
            image_message: MessageField::some(wa::message::ImageMessage {
                caption: caption(c),
                mimetype,
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Video { caption: c, .. } => wa::Message {
            video_message: MessageField::some(wa::message::VideoMessage {
                caption: caption(c),
                mimetype,
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Audio { voice, .. } => wa::Message {
            audio_message: MessageField::some(wa::message::AudioMessage {
                mimetype,
                ptt: Some(*voice),
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Document {
            file_name,
            caption: c,
            ..
        } => wa::Message {
            document_message: MessageField::some(wa::message::DocumentMessage {
                mimetype,
                file_name: file_name.clone(),
                title: file_name.clone(),
                caption: caption(c),
                ..Default::default()
            }),
            ..Default::default()
        },
        Content::Sticker { .. } => wa::Message {
            sticker_message: MessageField::some(wa::message::StickerMessage {
                mimetype,
                ..Default::default()
            }),
            ..Default::default()
        },
        other => {
            let mut m = build(other, None).ok()?;
            // A poll's fresh secret belongs to a new poll, not to its quote.
            m.message_context_info = MessageField::none();
            m
        }
    })
}

/// For a reaction: the target message's key and the emoji, for `Client::send_reaction(chat,
/// key, emoji)`, which encrypts reactions in Community announcement groups (where a plain
/// [`build`] reaction is not what WhatsApp expects). `None` for other kinds.
pub fn reaction_target(content: &Content) -> Option<(wa::MessageKey, &str)> {
    match content {
        Content::Reaction {
            chat,
            message_id,
            emoji,
            from_me,
            participant,
        } => Some((
            target_key(chat, message_id, *from_me, participant.as_deref()),
            emoji,
        )),
        _ => None,
    }
}

/// The key of a reaction's target message: its chat, who sent it, its id.
fn target_key(chat: &str, id: &str, from_me: bool, participant: Option<&str>) -> wa::MessageKey {
    wa::MessageKey {
        remote_jid: Some(chat.to_string()),
        from_me: Some(from_me),
        id: Some(id.to_string()),
        participant: participant.map(str::to_string),
    }
}

/// Give a built poll the secret its record keeps (a resend must carry the secret of the
/// first send); other messages are left as they are.
pub fn set_poll_secret(msg: &mut wa::Message, secret: [u8; 32]) {
    if msg.poll_creation_message_v3.is_set() || msg.poll_creation_message.is_set() {
        msg.message_context_info
            .get_or_insert_default()
            .message_secret = Some(secret.to_vec());
    }
}

/// A fresh 32-byte message secret.
pub fn random_secret() -> [u8; 32] {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// A poll as WhatsApp Web builds one: `v3` for a single choice, `v1` otherwise; options by
/// name (votes reference their SHA-256); `poll_content_type` TEXT; the secret voters derive
/// their vote keys from in `message_context_info`.
fn build_poll(question: &str, options: &[String], count: u32, secret: [u8; 32]) -> wa::Message {
    let poll = wa::message::PollCreationMessage {
        name: Some(question.to_string()),
        options: options
            .iter()
            .map(|o| wa::message::poll_creation_message::Option {
                option_name: Some(o.clone()),
                option_hash: None,
            })
            .collect(),
        selectable_options_count: Some(count),
        poll_content_type: Some(wa::message::PollContentType::TEXT),
        ..Default::default()
    };
    let context = MessageField::some(wa::MessageContextInfo {
        message_secret: Some(secret.to_vec()),
        ..Default::default()
    });
    if count == 1 {
        wa::Message {
            poll_creation_message_v3: MessageField::some(poll),
            message_context_info: context,
            ..Default::default()
        }
    } else {
        wa::Message {
            poll_creation_message: MessageField::some(poll),
            message_context_info: context,
            ..Default::default()
        }
    }
}

fn native_button(
    name: &str,
    params: &Value,
) -> wa::message::interactive_message::native_flow_message::NativeFlowButton {
    wa::message::interactive_message::native_flow_message::NativeFlowButton {
        name: Some(name.to_string()),
        button_params_json: Some(params.to_string()),
    }
}

/// A top-level native-flow `InteractiveMessage`: the form whatsapp-rust announces with the
/// `<biz>` stanza child the server requires.
fn interactive(
    header: Option<&str>,
    body: &str,
    footer: Option<&str>,
    buttons: Vec<wa::message::interactive_message::native_flow_message::NativeFlowButton>,
) -> wa::Message {
    use wa::message::interactive_message as im;
    wa::Message {
        interactive_message: MessageField::some(wa::message::InteractiveMessage {
            header: MessageField::some(im::Header {
                title: header.map(str::to_string),
                has_media_attachment: Some(false),
                ..Default::default()
            }),
            body: MessageField::some(im::Body {
                text: Some(body.to_string()),
            }),
            footer: match footer {
                Some(t) => MessageField::some(im::Footer {
                    text: Some(t.to_string()),
                    ..Default::default()
                }),
                None => MessageField::none(),
            },
            interactive_message: Some(im::InteractiveMessage::NativeFlowMessage(Box::new(
                im::NativeFlowMessage {
                    buttons,
                    message_params_json: None,
                    message_version: Some(1),
                },
            ))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// serde helpers: bytes as standard base64
// ---------------------------------------------------------------------------------------------

mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer, T: AsRef<[u8]>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v.as_ref()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: TryFrom<Vec<u8>>>(
        d: D,
    ) -> Result<T, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = STANDARD.decode(s).map_err(D::Error::custom)?;
        let len = bytes.len();
        T::try_from(bytes).map_err(|_| D::Error::custom(format!("unexpected length {len}")))
    }
}

mod b64_opt {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| STANDARD.decode(s).map_err(D::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
