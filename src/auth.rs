//! API keys and first-boot setup: the key format, scopes, hashing, and the one-time setup code.
//!
//! # Keys
//!
//! A key reads `wgk_<id>_<secret>`: `id` is 10 and `secret` 40 characters of lowercase
//! Crockford base32 (50 and 200 random bits). The key is shown once, when it is made; the
//! store keeps its SHA-256 only ([`KeyRecord::hash`]), found by `id` and compared in constant
//! time. A key has scopes ([`Scope`]; `admin` implies every other) and, optionally, a list of
//! the sessions it may see and touch. A revoked key stays in the store (for the listing) and
//! is refused from then on.
//!
//! # First boot
//!
//! While the store holds no key at all, [`Setup`] is open: the daemon makes a random setup
//! code (8 characters of Crockford base32, shown as `ABCD-EFGH`) and logs it once; the code
//! is claimed once, for the first admin key (`POST /api/setup`). Creating a key from the CLI
//! also closes setup. Wrong guesses are rate limited ([`MAX_SETUP_FAILURES`] per
//! [`SETUP_FAILURE_WINDOW`]). Sessions do not start while setup is open.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::engine::valid_session_id;
use crate::events::now_ms;
use crate::store::keys::{self, KeyRecord};
use crate::store::{Store, StoreError};

/// Every key starts with this.
pub const KEY_PREFIX: &str = "wgk_";
const ID_LEN: usize = 10;
const SECRET_LEN: usize = 40;
/// Longest key name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// Wrong setup codes accepted per [`SETUP_FAILURE_WINDOW`] before guesses are refused.
pub const MAX_SETUP_FAILURES: usize = 5;
pub const SETUP_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Crockford's base32 alphabet (no I, L, O, U).
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// What a key may do. `admin` implies every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    #[serde(rename = "admin")]
    Admin,
    #[serde(rename = "sessions:read")]
    SessionsRead,
    #[serde(rename = "sessions:write")]
    SessionsWrite,
    #[serde(rename = "messages:send")]
    MessagesSend,
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Admin,
        Scope::SessionsRead,
        Scope::SessionsWrite,
        Scope::MessagesSend,
        Scope::WebhooksManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::SessionsRead => "sessions:read",
            Scope::SessionsWrite => "sessions:write",
            Scope::MessagesSend => "messages:send",
            Scope::WebhooksManage => "webhooks:manage",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| KeyError::UnknownScope(s.to_string()))
    }
}

impl KeyRecord {
    /// Whether the key holds `scope` (directly or through `admin`).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }

    /// Whether the key may see and touch session `id`.
    pub fn allows_session(&self, id: &str) -> bool {
        match &self.sessions {
            None => true,
            Some(list) => list.iter().any(|s| s == id),
        }
    }

    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Whether `token` is this key (constant-time comparison of the hashes).
    pub fn verify(&self, token: &str) -> bool {
        let Some(stored) = decode_hex32(&self.hash) else {
            return false;
        };
        bool::from(hash_token(token).ct_eq(&stored))
    }
}

/// Why a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "unknown scope '{0}': use admin, sessions:read, sessions:write, messages:send or webhooks:manage"
    )]
    UnknownScope(String),
    #[error("a key needs at least one scope")]
    NoScopes,
    #[error("invalid session id '{0}' in sessions")]
    InvalidSession(String),
    #[error("an admin key cannot be limited to sessions (it could make an unlimited key)")]
    LimitedAdmin,
    #[error("sessions, when given, must name at least one session")]
    EmptySessions,
    #[error("the name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a new key should be.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeySpec {
    pub scopes: Vec<Scope>,
    /// `None`: every session.
    #[serde(default)]
    pub sessions: Option<Vec<String>>,
    #[serde(default)]
    pub name: Option<String>,
}

impl KeySpec {
    pub fn admin(name: &str) -> Self {
        KeySpec {
            scopes: vec![Scope::Admin],
            sessions: None,
            name: Some(name.to_string()),
        }
    }

    fn validate(mut self) -> Result<Self, KeyError> {
        if self.scopes.is_empty() {
            return Err(KeyError::NoScopes);
        }
        self.scopes.sort();
        self.scopes.dedup();
        if let Some(list) = &mut self.sessions {
            if list.is_empty() {
                return Err(KeyError::EmptySessions);
            }
            if let Some(bad) = list.iter().find(|s| !valid_session_id(s)) {
                return Err(KeyError::InvalidSession(bad.clone()));
            }
            if self.scopes.contains(&Scope::Admin) {
                return Err(KeyError::LimitedAdmin);
            }
            list.sort();
            list.dedup();
        }
        if self
            .name
            .as_ref()
            .is_some_and(|n| n.chars().count() > MAX_NAME_LEN)
        {
            return Err(KeyError::NameTooLong);
        }
        Ok(self)
    }
}

/// A key just made: the token (shown once) and what the store keeps.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub token: String,
    pub record: KeyRecord,
}

fn random_base32(len: usize, lowercase: bool) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| {
            let c = CROCKFORD[rng.random_range(0..32)] as char;
            if lowercase { c.to_ascii_lowercase() } else { c }
        })
        .collect()
}

/// SHA-256 of the whole token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The id of a well-formed token, `None` for anything else.
pub fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let ok = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| CROCKFORD.contains(&b.to_ascii_uppercase()) && !b.is_ascii_uppercase())
    };
    (ok(id, ID_LEN) && ok(secret, SECRET_LEN)).then_some(id)
}

/// Make a key (not stored yet).
pub fn generate(spec: KeySpec) -> Result<NewKey, KeyError> {
    let spec = spec.validate()?;
    let id = random_base32(ID_LEN, true);
    let token = format!("{KEY_PREFIX}{id}_{}", random_base32(SECRET_LEN, true));
    let record = KeyRecord {
        id,
        name: spec.name,
        scopes: spec.scopes,
        sessions: spec.sessions,
        hash: hex(&hash_token(&token)),
        created_at: now_ms(),
        revoked_at: None,
    };
    Ok(NewKey { token, record })
}

/// Make a key and store it.
pub async fn create_key(store: &Store, spec: KeySpec) -> Result<NewKey, KeyError> {
    loop {
        let new = generate(spec.clone())?;
        let rec = new.record.clone();
        // A 50-bit id collides practically never; try again if it does.
        if store.write(move |txn| keys::insert(txn, &rec)).await? {
            let scopes: Vec<&str> = new.record.scopes.iter().map(|s| s.as_str()).collect();
            tracing::info!(key = %new.record.id, scopes = %scopes.join(","), "API key created");
            return Ok(new);
        }
    }
}

/// Find the key a token names, if the token is well formed, known and matches.
pub async fn lookup(store: &Store, token: &str) -> Result<Option<KeyRecord>, StoreError> {
    let Some(id) = token_id(token) else {
        return Ok(None);
    };
    let id = id.to_string();
    let rec = store.read(move |txn| keys::get(txn, &id)).await?;
    Ok(rec.filter(|r| r.verify(token)))
}

// ---------------------------------------------------------------------------------------------
// First-boot setup
// ---------------------------------------------------------------------------------------------

/// Why a setup claim was refused.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("setup is closed: the first admin key was already issued")]
    Closed,
    #[error("wrong setup code")]
    WrongCode,
    #[error("too many wrong setup codes; try again in {retry_after_s} s")]
    TooManyAttempts { retry_after_s: u64 },
    #[error(transparent)]
    Key(#[from] KeyError),
}

enum SetupState {
    Open {
        /// Normalized: 8 upper-case Crockford characters, no dash.
        code: String,
        failures: VecDeque<Instant>,
    },
    Closed,
}

struct SetupInner {
    state: Mutex<SetupState>,
    claimed: watch::Sender<bool>,
}

/// The first-boot setup handle: whether setup is open, the code while it is, and a watch for
/// its closing. Cloning shares it (the API, the control socket and the display hold one).
#[derive(Clone)]
pub struct Setup {
    inner: Arc<SetupInner>,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the code through Debug.
        f.debug_struct("Setup")
            .field("open", &self.is_open())
            .finish()
    }
}

/// Upper case, dashes and spaces dropped, and the letters Crockford reads as digits mapped.
fn normalize_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

impl Setup {
    fn with_state(state: SetupState) -> Self {
        let (claimed, _) = watch::channel(matches!(state, SetupState::Closed));
        Setup {
            inner: Arc::new(SetupInner {
                state: Mutex::new(state),
                claimed,
            }),
        }
    }

    /// Open setup with a fresh code if the store holds no key; closed otherwise.
    pub async fn from_store(store: &Store) -> Result<Setup, StoreError> {
        if store.read(keys::any).await? {
            Ok(Setup::closed())
        } else {
            Ok(Setup::open_with_code(&random_base32(8, false)))
        }
    }

    /// Setup already done.
    pub fn closed() -> Setup {
        Setup::with_state(SetupState::Closed)
    }

    /// Open setup with a known code (tests, and [`Setup::from_store`]).
    pub fn open_with_code(code: &str) -> Setup {
        Setup::with_state(SetupState::Open {
            code: normalize_code(code),
            failures: VecDeque::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SetupState> {
        // The state is a plain value; a panic elsewhere cannot leave it half-written.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), SetupState::Open { .. })
    }

    /// The code as people read it (`ABCD-EFGH`) while setup is open.
    pub fn code(&self) -> Option<String> {
        match &*self.lock() {
            SetupState::Open { code, .. } if code.len() == 8 => {
                Some(format!("{}-{}", &code[..4], &code[4..]))
            }
            SetupState::Open { code, .. } => Some(code.clone()),
            SetupState::Closed => None,
        }
    }

    /// Close setup (a key was created some other way).
    pub fn close(&self) {
        let was_open = {
            let mut st = self.lock();
            let was = matches!(*st, SetupState::Open { .. });
            *st = SetupState::Closed;
            was
        };
        if was_open {
            tracing::info!("first-boot setup closed");
        }
        self.inner.claimed.send_replace(true);
    }

    /// Resolves once setup is closed (at once if it is).
    pub async fn wait_closed(&self) {
        let mut rx = self.inner.claimed.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Check a code: the first admin key on success, once.
    pub async fn claim(&self, store: &Store, code: &str) -> Result<NewKey, SetupError> {
        {
            let mut st = self.lock();
            let SetupState::Open {
                code: expected,
                failures,
            } = &mut *st
            else {
                return Err(SetupError::Closed);
            };
            let now = Instant::now();
            while failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= SETUP_FAILURE_WINDOW)
            {
                failures.pop_front();
            }
            if failures.len() >= MAX_SETUP_FAILURES {
                let oldest = failures.front().copied().unwrap_or(now);
                let wait = SETUP_FAILURE_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(SetupError::TooManyAttempts {
                    retry_after_s: wait.as_secs().max(1),
                });
            }
            let given = normalize_code(code);
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                failures.push_back(now);
                tracing::warn!("wrong first-boot setup code");
                return Err(SetupError::WrongCode);
            }
        }
        let new = generate(KeySpec::admin("setup"))?;
        let rec = new.record.clone();
        let first = store
            .write(move |txn| keys::insert_first(txn, &rec))
            .await
            .map_err(KeyError::from)?;
        // Either way a key exists now: setup is over.
        self.close();
        if first {
            tracing::info!(key = %new.record.id, "first admin key issued through setup");
            Ok(new)
        } else {
            Err(SetupError::Closed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_format_and_verification() {
        let new = generate(KeySpec::admin("t")).unwrap();
        let id = token_id(&new.token).unwrap();
        assert_eq!(id, new.record.id);
        assert_eq!(new.token.len(), 4 + ID_LEN + 1 + SECRET_LEN);
        assert!(new.record.verify(&new.token));
        // Change the last character (to one it is not: a random token may end in 'x').
        let (head, last) = new.token.split_at(new.token.len() - 1);
        let other = if last == "x" { "y" } else { "x" };
        assert!(!new.record.verify(&format!("{head}{other}")));
        assert!(!new.record.hash.contains(&new.token[15..]));
        assert_eq!(token_id("wgk_abc_def"), None);
        assert_eq!(token_id(&new.token.to_uppercase()), None);
        assert_eq!(token_id("Bearer"), None);
    }

    #[test]
    fn specs_are_checked() {
        let limited_admin = KeySpec {
            scopes: vec![Scope::Admin],
            sessions: Some(vec!["a".into()]),
            name: None,
        };
        assert!(matches!(
            generate(limited_admin),
            Err(KeyError::LimitedAdmin)
        ));
        assert!(matches!(
            generate(KeySpec::default()),
            Err(KeyError::NoScopes)
        ));
        let bad_session = KeySpec {
            scopes: vec![Scope::SessionsRead],
            sessions: Some(vec!["Not Valid".into()]),
            name: None,
        };
        assert!(matches!(
            generate(bad_session),
            Err(KeyError::InvalidSession(_))
        ));
        assert_eq!(
            "sessions:read".parse::<Scope>().unwrap(),
            Scope::SessionsRead
        );
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn admin_implies_every_scope_and_sessions_limit() {
        let admin = generate(KeySpec::admin("a")).unwrap().record;
        assert!(Scope::ALL.iter().all(|s| admin.allows(*s)));
        let reader = generate(KeySpec {
            scopes: vec![Scope::SessionsRead],
            sessions: Some(vec!["shop".into()]),
            name: None,
        })
        .unwrap()
        .record;
        assert!(reader.allows(Scope::SessionsRead));
        assert!(!reader.allows(Scope::SessionsWrite));
        assert!(reader.allows_session("shop"));
        assert!(!reader.allows_session("default"));
    }

    #[test]
    fn setup_codes_normalize() {
        let s = Setup::open_with_code("AB01-CD23");
        assert_eq!(s.code().as_deref(), Some("AB01-CD23"));
        assert_eq!(normalize_code("ab0l cd23"), "AB01CD23");
        assert_eq!(normalize_code("abOi-cd23"), "AB01CD23");
        let code = random_base32(8, false);
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| CROCKFORD.contains(&b)));
    }
}
