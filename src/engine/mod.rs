//! The only room that imports whatsapp-rust.
//!
//! [`SessionManager`] owns every session; each session is one task ([`session`]) that owns
//! its whatsapp-rust client, turns the library's events into [`SessionState`] changes (stored
//! first, then published on the bus) and obeys commands (start, stop, logout, pair code).

pub mod calls;
pub mod change;
pub mod compose;
pub mod contacts;
pub mod groups;
pub mod inbound;
pub mod manager;
pub mod media;
pub mod pacing;
pub mod presence;
pub mod profile;
pub mod recover;
pub mod reply;
pub mod sender;
pub mod session;
pub mod wire;

pub use manager::{SessionInfo, SessionManager};
pub use media::{MediaError, MediaFile};

use crate::events::SessionState;
use crate::store::StoreError;

/// Message counters since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub delivered: std::sync::atomic::AtomicU64,
    pub read: std::sync::atomic::AtomicU64,
    pub received: std::sync::atomic::AtomicU64,
    /// Lost inbound messages whose senders were asked to send them again ([`recover`]).
    pub resend_requests: std::sync::atomic::AtomicU64,
}

impl EngineStats {
    pub(crate) fn bump(counter: &std::sync::atomic::AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What the engine needs from the configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The WhatsApp WebSocket endpoint.
    pub ws_url: String,
    /// The client version announced to WhatsApp; passing it means connecting never waits
    /// on a version fetch from the web.
    pub version: (u32, u32, u32),
    /// The name shown to contacts.
    pub push_name: String,
    /// A PEM certificate the media HTTP client trusts instead of the public roots. Honoured
    /// only in a `trust-wa-mock` build (wa-mock's media host); ignored otherwise.
    pub trust_ca_pem: Option<Vec<u8>>,
    /// Where downloaded media is cached; `None` = `media/` beside the redb file.
    pub media_cache_dir: Option<std::path::PathBuf>,
    /// The cache's size bound in bytes; the least recently used files go first beyond it.
    pub media_cache_max_bytes: u64,
    /// Media up to this size is embedded in `message.received` as base64 (0 = never).
    pub inline_media_max_bytes: u64,
    /// The platform's pacing defaults (`[pacing]`); sessions override them one by one.
    pub pacing: pacing::Settings,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ws_url: "wss://web.whatsapp.com/ws/chat".into(),
            version: DEFAULT_VERSION,
            push_name: "wagate".into(),
            trust_ca_pem: None,
            media_cache_dir: None,
            media_cache_max_bytes: media::DEFAULT_CACHE_MAX_BYTES,
            inline_media_max_bytes: 0,
            pacing: pacing::Settings::default(),
        }
    }
}

/// The WhatsApp Web version wagate announces unless the configuration names another.
pub const DEFAULT_VERSION: (u32, u32, u32) = (2, 3000, 1_029_496_320);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no session named '{0}'")]
    NotFound(String),
    #[error("a session named '{0}' already exists")]
    Exists(String),
    #[error("invalid session id '{0}': use 1-32 characters from a-z, 0-9, '_' and '-'")]
    InvalidId(String),
    #[error("session '{id}' is {state}, not waiting for a scan")]
    NotPairing { id: String, state: &'static str },
    #[error("invalid phone number '{0}': digits with the country code, 7-15 of them")]
    InvalidPhone(String),
    #[error("pairing by code failed: {0}")]
    PairCode(String),
    #[error("session '{id}' has failed ({reason}); start it again first")]
    SessionFailed { id: String, reason: &'static str },
    #[error("session '{0}' is not connected")]
    NotConnected(String),
    #[error("invalid JID '{0}'")]
    InvalidJid(String),
    #[error("{0}")]
    Numbers(String),
    #[error("{0}")]
    Profile(String),
    #[error(
        "the session's number-check budget is spent (check_per_minute / check_per_hour / \
         check_per_day); try again in {retry_after_s} s"
    )]
    CheckBudget { retry_after_s: u64 },
    #[error("invalid setting {0}")]
    InvalidSettings(#[from] pacing::SettingsError),
    #[error(
        "the same content already went to {recipients} other recipients within \
         {window_s} s (the duplicate guard's limit); change the content or the session's \
         duplicate settings"
    )]
    Duplicate { recipients: usize, window_s: u64 },
    #[error("no message '{0}' in this session")]
    MessageNotFound(String),
    #[error("message '{id}' is {status}, not held")]
    NotHeld { id: String, status: &'static str },
    /// An edit or a revoke the message does not allow (not sent, too late, deleted, a kind
    /// without text); `code` names which.
    #[error("{message}")]
    NotChangeable { code: &'static str, message: String },
    #[error("no call '{0}' in this session")]
    CallNotFound(String),
    /// A group request WhatsApp refused.
    #[error("{message}")]
    GroupRefused {
        kind: groups::GroupRefusal,
        message: String,
    },
    /// A group request that is wrong before asking (the field is named).
    #[error("{0}")]
    InvalidGroup(String),
    /// Over the session's send limits: an admin change that adds or removes numbers counts
    /// each one as a send.
    #[error(
        "the change touches {numbers} numbers and the session's send limits (per_minute / \
         per_hour / per_day, warm-up) leave room for fewer now; try again in {retry_after_s} s"
    )]
    RateLimited { numbers: usize, retry_after_s: u64 },
    /// An edit's body is wrong (the field is named).
    #[error("{0}")]
    InvalidEdit(String),
    #[error("WhatsApp request failed: {0}")]
    Client(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the engine is shutting down")]
    Closed,
}

/// Session ids: 1-32 characters of `a-z`, `0-9`, `_`, `-`.
pub fn valid_session_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Phone numbers for pair-code linking: digits only (a leading `+` and spaces are dropped),
/// country code included.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let digits: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = digits.strip_prefix('+').unwrap_or(&digits);
    ((7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0'))
    .then(|| digits.to_string())
}

/// Whether `state` accepts a `start`.
pub(crate) fn startable(state: &SessionState) -> bool {
    matches!(state, SessionState::Stopped | SessionState::Failed { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        assert!(valid_session_id("default"));
        assert!(valid_session_id("shop-2_a"));
        assert!(!valid_session_id(""));
        assert!(!valid_session_id("Default"));
        assert!(!valid_session_id("a b"));
        assert!(!valid_session_id(&"a".repeat(33)));
    }

    #[test]
    fn phones() {
        assert_eq!(
            normalize_phone("+44 7700 900123").as_deref(),
            Some("447700900123")
        );
        assert_eq!(
            normalize_phone("15551234567").as_deref(),
            Some("15551234567")
        );
        assert_eq!(normalize_phone("0044123"), None);
        assert_eq!(normalize_phone("12ab4567"), None);
        assert_eq!(normalize_phone("123"), None);
    }
}
