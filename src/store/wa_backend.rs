//! whatsapp-rust's storage [`Backend`](wacore::store::traits::Backend) on redb, one namespace
//! per session.
//!
//! [`RedbBackend`] implements all five traits that make up wacore's `Backend` (`SignalStore`,
//! `AppSyncStore`, `ProtocolStore`, `MsgSecretStore`, `DeviceStore`), with wacore's
//! `InMemoryBackend` as the reference for behaviour. Every trait call is one redb transaction
//! on a blocking thread ([`Store::read`] / [`Store::write`]); the batch methods are overridden
//! so a batch is one transaction too, and the read-modify-write methods (tc tokens, msg-secret
//! merges, pre-key upload marks) are atomic because they run inside one write transaction.
//!
//! # Table layout
//!
//! Every key starts with the session id, so all sessions share the file and a session's rows
//! are one contiguous key range per table (deleting a session is one range delete per table,
//! and no lookup ever scans another session's rows). `s` is the session id below.
//!
//! | table                  | key                                   | value                             |
//! |------------------------|---------------------------------------|-----------------------------------|
//! | `wa_identities`        | `(s, address)`                        | 32-byte identity key              |
//! | `wa_sessions`          | `(s, address)`                        | Signal session record             |
//! | `wa_prekeys`           | `(s, id: u32)`                        | `(uploaded: bool, record)`        |
//! | `wa_signed_prekeys`    | `(s, id: u32)`                        | record                            |
//! | `wa_sender_keys`       | `(s, address)`                        | record                            |
//! | `wa_sync_keys`         | `(s, key_id: bytes)`                  | `(timestamp, key_data, fingerprint)` |
//! | `wa_app_versions`      | `(s, collection)`                     | `HashState` as JSON               |
//! | `wa_mutation_macs`     | `(s, collection, index_mac: bytes)`   | value MAC                         |
//! | `wa_skdm_devices`      | `(s, group, device)`                  | `has_key: bool`                   |
//! | `wa_lid_pn`            | `(s, lid)`                            | `LidPnMappingEntry` as JSON       |
//! | `wa_pn_lid`            | `(s, phone)`                          | lid (reverse index of the above)  |
//! | `wa_base_keys`         | `(s, address, message_id)`            | base key                          |
//! | `wa_device_lists`      | `(s, user)`                           | `DeviceListRecord` as JSON        |
//! | `wa_group_meta`        | `(s, group)`                          | opaque blob                       |
//! | `wa_tc_tokens`         | `(s, jid)`                            | `(token_ts, sender_ts?, token)`   |
//! | `wa_sent`              | `(s, chat, message_id)`               | `(stored_at, payload)`            |
//! | `wa_sent_by_time`      | `(s, stored_at, chat, message_id)`    | `()` (expiry index)               |
//! | `wa_pending_in`        | `(s, chat, sender, id)`               | `(stored_at, message)`            |
//! | `wa_pending_in_by_time`| `(s, stored_at, chat, sender, id)`    | `()` (expiry index)               |
//! | `wa_msg_secrets`       | `(s, chat, sender, msg_id)`           | `(expires_at, message_ts, secret)`|
//! | `wa_msg_secret_expiry` | `(s, expires_at, chat, sender, msg_id)` | `()` (only rows with a deadline) |
//! | `wa_meta`              | `(s, name)`                           | `device` (the wacore `Device` as JSON), `next_device_id` (u32 BE), `latest_sync_key_id` |
//!
//! The `*_by_time` / `*_expiry` tables are maintained in the same transaction as their main
//! table, so the keepalive sweeps are range deletes instead of scans. Hot Signal rows are raw
//! bytes; the few structured values that change rarely (device, app-state hash, device lists,
//! LID mappings) are JSON, the one serde format already in the tree. Timestamps are unix
//! seconds from `wacore::time::now_secs`, as in the in-memory backend.
//!
//! Ranges over "every key whose first element is exactly `s`" use `(s, min)..(s + "\0", min)`:
//! `s + "\0"` is the smallest string greater than `s`, so the range holds exactly `s`'s rows
//! and never those of a session whose id merely starts with `s`.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::{Result as WaResult, StoreError as WaStoreError};
use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MessageSecret,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};
// The storage traits name `bytes::Bytes`; whatsapp-rust re-exports the crate (wacore does not),
// so the store borrows that path instead of adding a dependency.
use bytes::Bytes;

use super::wire_gate::WireGate;
use super::{Result, Store, StoreError};

/// How long a frame waits for the Signal state of a decrypt to be written before it goes
/// anyway. whatsapp-rust writes it 25 ms after the decrypt; a commit on an SD card takes tens
/// of milliseconds more.
const WIRE_WAIT_MAX: std::time::Duration = std::time::Duration::from_millis(500);

type Str2 = (&'static str, &'static str);
type Str3 = (&'static str, &'static str, &'static str);
type Str4 = (&'static str, &'static str, &'static str, &'static str);
/// `(timestamp, key_data, fingerprint)` of an app-state sync key.
type SyncKeyRow = (i64, &'static [u8], &'static [u8]);
/// `(token_timestamp, sender_timestamp, token)`.
type TcTokenRow = (i64, Option<i64>, &'static [u8]);
/// `(expires_at, message_ts, secret)`.
type MsgSecretRow = (i64, i64, &'static [u8]);
/// `(session, time, chat, id)` / `(session, time, chat, sender, id)` index keys.
type TimeKey3 = (&'static str, i64, &'static str, &'static str);
type TimeKey4 = (&'static str, i64, &'static str, &'static str, &'static str);

const IDENTITIES: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_identities");
const SESSIONS: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_sessions");
const PREKEYS: TableDefinition<(&str, u32), (bool, &[u8])> = TableDefinition::new("wa_prekeys");
const SIGNED_PREKEYS: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("wa_signed_prekeys");
const SENDER_KEYS: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_sender_keys");
const SYNC_KEYS: TableDefinition<(&str, &[u8]), SyncKeyRow> = TableDefinition::new("wa_sync_keys");
const APP_VERSIONS: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_app_versions");
const MUTATION_MACS: TableDefinition<(&str, &str, &[u8]), &[u8]> =
    TableDefinition::new("wa_mutation_macs");
const SKDM_DEVICES: TableDefinition<Str3, bool> = TableDefinition::new("wa_skdm_devices");
const LID_PN: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_lid_pn");
const PN_LID: TableDefinition<Str2, &str> = TableDefinition::new("wa_pn_lid");
const BASE_KEYS: TableDefinition<Str3, &[u8]> = TableDefinition::new("wa_base_keys");
const DEVICE_LISTS: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_device_lists");
const GROUP_META: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_group_meta");
const TC_TOKENS: TableDefinition<Str2, TcTokenRow> = TableDefinition::new("wa_tc_tokens");
const SENT: TableDefinition<Str3, (i64, &[u8])> = TableDefinition::new("wa_sent");
const SENT_BY_TIME: TableDefinition<TimeKey3, ()> = TableDefinition::new("wa_sent_by_time");
const PENDING_IN: TableDefinition<Str4, (i64, &[u8])> = TableDefinition::new("wa_pending_in");
const PENDING_IN_BY_TIME: TableDefinition<TimeKey4, ()> =
    TableDefinition::new("wa_pending_in_by_time");
const MSG_SECRETS: TableDefinition<Str4, MsgSecretRow> = TableDefinition::new("wa_msg_secrets");
const MSG_SECRET_EXPIRY: TableDefinition<TimeKey4, ()> =
    TableDefinition::new("wa_msg_secret_expiry");
const META: TableDefinition<Str2, &[u8]> = TableDefinition::new("wa_meta");

const META_DEVICE: &str = "device";
const META_NEXT_DEVICE_ID: &str = "next_device_id";
const META_LATEST_SYNC_KEY: &str = "latest_sync_key_id";

const NO_BYTES: &[u8] = &[];

/// Create every table of this module (called by [`Store::open`]).
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(IDENTITIES)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(PREKEYS)?;
    txn.open_table(SIGNED_PREKEYS)?;
    txn.open_table(SENDER_KEYS)?;
    txn.open_table(SYNC_KEYS)?;
    txn.open_table(APP_VERSIONS)?;
    txn.open_table(MUTATION_MACS)?;
    txn.open_table(SKDM_DEVICES)?;
    txn.open_table(LID_PN)?;
    txn.open_table(PN_LID)?;
    txn.open_table(BASE_KEYS)?;
    txn.open_table(DEVICE_LISTS)?;
    txn.open_table(GROUP_META)?;
    txn.open_table(TC_TOKENS)?;
    txn.open_table(SENT)?;
    txn.open_table(SENT_BY_TIME)?;
    txn.open_table(PENDING_IN)?;
    txn.open_table(PENDING_IN_BY_TIME)?;
    txn.open_table(MSG_SECRETS)?;
    txn.open_table(MSG_SECRET_EXPIRY)?;
    txn.open_table(META)?;
    Ok(())
}

/// The smallest string greater than `s`: the exclusive upper bound of "first element == s".
fn after(s: &str) -> String {
    let mut next = String::with_capacity(s.len() + 1);
    next.push_str(s);
    next.push('\0');
    next
}

/// Remove every whatsapp-rust key of `session` (identity, sessions, prekeys, app state...),
/// nothing of any other session.
pub fn delete_session_keys(txn: &WriteTransaction, session: &str) -> Result<()> {
    let s = session;
    let next = after(s);
    let n = next.as_str();
    txn.open_table(IDENTITIES)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(SESSIONS)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(PREKEYS)?
        .retain_in((s, 0u32)..=(s, u32::MAX), |_, _| false)?;
    txn.open_table(SIGNED_PREKEYS)?
        .retain_in((s, 0u32)..=(s, u32::MAX), |_, _| false)?;
    txn.open_table(SENDER_KEYS)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(SYNC_KEYS)?
        .retain_in((s, NO_BYTES)..(n, NO_BYTES), |_, _| false)?;
    txn.open_table(APP_VERSIONS)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(MUTATION_MACS)?
        .retain_in((s, "", NO_BYTES)..(n, "", NO_BYTES), |_, _| false)?;
    txn.open_table(SKDM_DEVICES)?
        .retain_in((s, "", "")..(n, "", ""), |_, _| false)?;
    txn.open_table(LID_PN)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(PN_LID)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(BASE_KEYS)?
        .retain_in((s, "", "")..(n, "", ""), |_, _| false)?;
    txn.open_table(DEVICE_LISTS)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(GROUP_META)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(TC_TOKENS)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    txn.open_table(SENT)?
        .retain_in((s, "", "")..(n, "", ""), |_, _| false)?;
    txn.open_table(SENT_BY_TIME)?
        .retain_in((s, i64::MIN, "", "")..(n, i64::MIN, "", ""), |_, _| false)?;
    txn.open_table(PENDING_IN)?
        .retain_in((s, "", "", "")..(n, "", "", ""), |_, _| false)?;
    txn.open_table(PENDING_IN_BY_TIME)?.retain_in(
        (s, i64::MIN, "", "", "")..(n, i64::MIN, "", "", ""),
        |_, _| false,
    )?;
    txn.open_table(MSG_SECRETS)?
        .retain_in((s, "", "", "")..(n, "", "", ""), |_, _| false)?;
    txn.open_table(MSG_SECRET_EXPIRY)?.retain_in(
        (s, i64::MIN, "", "", "")..(n, i64::MIN, "", "", ""),
        |_, _| false,
    )?;
    txn.open_table(META)?
        .retain_in((s, "")..(n, ""), |_, _| false)?;
    Ok(())
}

/// Per-session row counts of a time index whose keys start with (session, time, ..).
fn counts_by_session<K: redb::Key + 'static>(
    t: &impl ReadableTable<K, ()>,
    session_of: impl Fn(K::SelfType<'_>) -> String,
) -> Result<Vec<(String, u64)>> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    for row in t.iter()? {
        let (k, _) = row?;
        let s = session_of(k.value());
        match counts.last_mut() {
            Some((last, n)) if *last == s => *n += 1,
            _ => counts.push((s, 1)),
        }
    }
    Ok(counts)
}

/// A count bound on whatsapp-rust's per-message records, beside the library's own time
/// windows: each session keeps at most `max` copies of sent messages (for retry receipts,
/// otherwise kept 2 hours) and `max` message secrets (otherwise kept 30 to 90 days); the
/// oldest go first, at most `limit` rows of each kind per call. Returns the rows removed.
pub fn prune_message_records(txn: &WriteTransaction, max: u64, limit: usize) -> Result<u64> {
    let mut removed = 0u64;
    let mut sent = Vec::new();
    {
        let by_time = txn.open_table(SENT_BY_TIME)?;
        for (s, n) in counts_by_session(&by_time, |k| k.0.to_owned())? {
            let excess = usize::try_from(n.saturating_sub(max)).unwrap_or(usize::MAX);
            let take = excess.min(limit - sent.len());
            for row in by_time.range((s.as_str(), i64::MIN, "", "")..)?.take(take) {
                let (k, _) = row?;
                let (s, ts, chat, id) = k.value();
                sent.push((s.to_owned(), ts, chat.to_owned(), id.to_owned()));
            }
            if sent.len() >= limit {
                break;
            }
        }
    }
    {
        let mut by_time = txn.open_table(SENT_BY_TIME)?;
        let mut rows = txn.open_table(SENT)?;
        for (s, ts, chat, id) in &sent {
            by_time.remove((s.as_str(), *ts, chat.as_str(), id.as_str()))?;
            rows.remove((s.as_str(), chat.as_str(), id.as_str()))?;
            removed += 1;
        }
    }
    let mut secrets = Vec::new();
    {
        let expiry = txn.open_table(MSG_SECRET_EXPIRY)?;
        for (s, n) in counts_by_session(&expiry, |k| k.0.to_owned())? {
            let excess = usize::try_from(n.saturating_sub(max)).unwrap_or(usize::MAX);
            let take = excess.min(limit - secrets.len());
            for row in expiry
                .range((s.as_str(), i64::MIN, "", "", "")..)?
                .take(take)
            {
                let (k, _) = row?;
                let (s, at, chat, sender, id) = k.value();
                secrets.push((
                    s.to_owned(),
                    at,
                    chat.to_owned(),
                    sender.to_owned(),
                    id.to_owned(),
                ));
            }
            if secrets.len() >= limit {
                break;
            }
        }
    }
    let mut expiry = txn.open_table(MSG_SECRET_EXPIRY)?;
    let mut rows = txn.open_table(MSG_SECRETS)?;
    for (s, at, chat, sender, id) in &secrets {
        expiry.remove((s.as_str(), *at, chat.as_str(), sender.as_str(), id.as_str()))?;
        rows.remove((s.as_str(), chat.as_str(), sender.as_str(), id.as_str()))?;
        removed += 1;
    }
    Ok(removed)
}

/// How many rows `session` holds in each of this module's tables, by table name. For
/// diagnostics (and the tests that prove namespacing).
pub fn session_row_counts(
    txn: &ReadTransaction,
    session: &str,
) -> Result<Vec<(&'static str, u64)>> {
    fn count<I, T, E>(iter: I) -> Result<u64>
    where
        I: Iterator<Item = std::result::Result<T, E>>,
        StoreError: From<E>,
    {
        let mut n = 0;
        for row in iter {
            row?;
            n += 1;
        }
        Ok(n)
    }
    let s = session;
    let next = after(s);
    let n = next.as_str();
    Ok(vec![
        (
            "wa_identities",
            count(txn.open_table(IDENTITIES)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_sessions",
            count(txn.open_table(SESSIONS)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_prekeys",
            count(txn.open_table(PREKEYS)?.range((s, 0u32)..=(s, u32::MAX))?)?,
        ),
        (
            "wa_signed_prekeys",
            count(
                txn.open_table(SIGNED_PREKEYS)?
                    .range((s, 0u32)..=(s, u32::MAX))?,
            )?,
        ),
        (
            "wa_sender_keys",
            count(txn.open_table(SENDER_KEYS)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_sync_keys",
            count(
                txn.open_table(SYNC_KEYS)?
                    .range((s, NO_BYTES)..(n, NO_BYTES))?,
            )?,
        ),
        (
            "wa_app_versions",
            count(txn.open_table(APP_VERSIONS)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_mutation_macs",
            count(
                txn.open_table(MUTATION_MACS)?
                    .range((s, "", NO_BYTES)..(n, "", NO_BYTES))?,
            )?,
        ),
        (
            "wa_skdm_devices",
            count(
                txn.open_table(SKDM_DEVICES)?
                    .range((s, "", "")..(n, "", ""))?,
            )?,
        ),
        (
            "wa_lid_pn",
            count(txn.open_table(LID_PN)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_pn_lid",
            count(txn.open_table(PN_LID)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_base_keys",
            count(txn.open_table(BASE_KEYS)?.range((s, "", "")..(n, "", ""))?)?,
        ),
        (
            "wa_device_lists",
            count(txn.open_table(DEVICE_LISTS)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_group_meta",
            count(txn.open_table(GROUP_META)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_tc_tokens",
            count(txn.open_table(TC_TOKENS)?.range((s, "")..(n, ""))?)?,
        ),
        (
            "wa_sent",
            count(txn.open_table(SENT)?.range((s, "", "")..(n, "", ""))?)?,
        ),
        (
            "wa_sent_by_time",
            count(
                txn.open_table(SENT_BY_TIME)?
                    .range((s, i64::MIN, "", "")..(n, i64::MIN, "", ""))?,
            )?,
        ),
        (
            "wa_pending_in",
            count(
                txn.open_table(PENDING_IN)?
                    .range((s, "", "", "")..(n, "", "", ""))?,
            )?,
        ),
        (
            "wa_pending_in_by_time",
            count(
                txn.open_table(PENDING_IN_BY_TIME)?
                    .range((s, i64::MIN, "", "", "")..(n, i64::MIN, "", "", ""))?,
            )?,
        ),
        (
            "wa_msg_secrets",
            count(
                txn.open_table(MSG_SECRETS)?
                    .range((s, "", "", "")..(n, "", "", ""))?,
            )?,
        ),
        (
            "wa_msg_secret_expiry",
            count(
                txn.open_table(MSG_SECRET_EXPIRY)?
                    .range((s, i64::MIN, "", "", "")..(n, i64::MIN, "", "", ""))?,
            )?,
        ),
        (
            "wa_meta",
            count(txn.open_table(META)?.range((s, "")..(n, ""))?)?,
        ),
    ])
}

// ---------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------

fn corrupt(table: &'static str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        table,
        detail: detail.to_string(),
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Invalid(format!("encode: {e}")))
}

fn from_json<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(table, e))
}

fn fixed<const N: usize>(table: &'static str, bytes: &[u8]) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| corrupt(table, format!("expected {N} bytes, found {}", bytes.len())))
}

/// Storage errors as wacore wants them: bad rows are serialization errors, the rest database
/// errors; the wagate error rides along as the source so `is_fatal` stays reachable.
fn to_wa(e: StoreError) -> WaStoreError {
    match e {
        StoreError::Corrupt { .. } | StoreError::Invalid(_) => {
            WaStoreError::Serialization(Box::new(e))
        }
        other => WaStoreError::Database(Box::new(other)),
    }
}

/// `[low, high)` as explicit bounds. In a time index, `low = (s, i64::MIN, "", ..)` and
/// `high = (s, cutoff, "", ..)` select every row of `s` stamped strictly before `cutoff`.
fn before_bounds<T>(low: T, high: T) -> (Bound<T>, Bound<T>) {
    (Bound::Included(low), Bound::Excluded(high))
}

fn put_msg_secret_row(txn: &WriteTransaction, s: &str, entry: &MsgSecretEntry) -> Result<()> {
    let mut rows = txn.open_table(MSG_SECRETS)?;
    let mut expiry = txn.open_table(MSG_SECRET_EXPIRY)?;
    let key = (s, &*entry.chat, &*entry.sender, &*entry.msg_id);
    let old = rows.get(key)?.map(|v| {
        let (expires_at, message_ts, _) = v.value();
        (expires_at, message_ts)
    });
    let (expires_at, message_ts) = match old {
        Some((old_expires, old_ts)) => {
            if old_expires != 0 {
                expiry.remove((s, old_expires, &*entry.chat, &*entry.sender, &*entry.msg_id))?;
            }
            (
                merge_msg_secret_expiry(old_expires, entry.expires_at),
                merge_msg_secret_message_ts(old_ts, entry.message_ts),
            )
        }
        None => (entry.expires_at, entry.message_ts),
    };
    rows.insert(key, (expires_at, message_ts, entry.secret.as_slice()))?;
    if expires_at != 0 {
        expiry.insert(
            (s, expires_at, &*entry.chat, &*entry.sender, &*entry.msg_id),
            (),
        )?;
    }
    Ok(())
}

/// A LID and the phone number it stands for, as the session's whatsapp-rust client learned
/// them (bare user parts; times in unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub lid: String,
    pub phone: String,
    /// `None` when the client did not say (it records 0 for some sources).
    pub learned_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// Where the client learned it (`usync`, `peer_pn_message`, ...).
    pub source: String,
}

impl From<LidPnMappingEntry> for Identity {
    fn from(e: LidPnMappingEntry) -> Self {
        Identity {
            lid: e.lid,
            phone: e.phone_number,
            learned_at: (e.created_at > 0).then_some(e.created_at),
            updated_at: (e.updated_at > 0).then_some(e.updated_at),
            source: e.learning_source,
        }
    }
}

/// The session's identity with this LID (user part), if the client learned one.
pub fn identity_by_lid(
    txn: &ReadTransaction,
    session: &str,
    lid: &str,
) -> Result<Option<Identity>> {
    txn.open_table(LID_PN)?
        .get((session, lid))?
        .map(|v| from_json::<LidPnMappingEntry>("wa_lid_pn", v.value()).map(Identity::from))
        .transpose()
}

/// The session's identity with this phone number (digits), if the client learned one.
pub fn identity_by_phone(
    txn: &ReadTransaction,
    session: &str,
    phone: &str,
) -> Result<Option<Identity>> {
    let lid = txn
        .open_table(PN_LID)?
        .get((session, phone))?
        .map(|v| v.value().to_owned());
    match lid {
        Some(lid) => identity_by_lid(txn, session, &lid),
        None => Ok(None),
    }
}

fn put_lid_mapping_row(txn: &WriteTransaction, s: &str, entry: &LidPnMappingEntry) -> Result<()> {
    let mut by_lid = txn.open_table(LID_PN)?;
    let mut by_pn = txn.open_table(PN_LID)?;
    let old_phone = match by_lid.get((s, entry.lid.as_str()))? {
        Some(v) => Some(from_json::<LidPnMappingEntry>("wa_lid_pn", v.value())?.phone_number),
        None => None,
    };
    if let Some(old_phone) = old_phone.filter(|p| *p != entry.phone_number) {
        // Drop the stale reverse entry only while it still points at this LID: another LID
        // may have claimed that phone number since.
        let points_here = by_pn
            .get((s, old_phone.as_str()))?
            .is_some_and(|v| v.value() == entry.lid);
        if points_here {
            by_pn.remove((s, old_phone.as_str()))?;
        }
    }
    by_pn.insert((s, entry.phone_number.as_str()), entry.lid.as_str())?;
    by_lid.insert((s, entry.lid.as_str()), to_json(entry)?.as_slice())?;
    Ok(())
}

fn store_pending_row(
    txn: &WriteTransaction,
    s: &str,
    now: i64,
    chat: &str,
    sender: &str,
    id: &str,
    message: &[u8],
) -> Result<()> {
    let mut rows = txn.open_table(PENDING_IN)?;
    let mut by_time = txn.open_table(PENDING_IN_BY_TIME)?;
    let old_ts = rows
        .insert((s, chat, sender, id), (now, message))?
        .map(|v| v.value().0);
    if let Some(old_ts) = old_ts {
        by_time.remove((s, old_ts, chat, sender, id))?;
    }
    by_time.insert((s, now, chat, sender, id), ())?;
    Ok(())
}

fn delete_pending_row(
    txn: &WriteTransaction,
    s: &str,
    chat: &str,
    sender: &str,
    id: &str,
) -> Result<()> {
    let mut rows = txn.open_table(PENDING_IN)?;
    let old = rows.remove((s, chat, sender, id))?.map(|v| v.value().0);
    if let Some(old_ts) = old {
        txn.open_table(PENDING_IN_BY_TIME)?
            .remove((s, old_ts, chat, sender, id))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The backend
// ---------------------------------------------------------------------------

/// The whatsapp-rust storage backend of one session.
#[derive(Clone, Debug)]
pub struct RedbBackend {
    store: Store,
    session: Arc<str>,
    /// Set once the client that owns this backend is gone: its lingering tasks must not
    /// write into a namespace that is being wiped or that a new client now owns.
    retired: Arc<AtomicBool>,
    /// Told of every decrypt and every committed Signal-state write; the client's transport
    /// waits on it (see [`WireGate`]).
    gate: Arc<WireGate>,
    /// Where [`Unrecovered`] messages go (see [`RedbBackend::take_unrecovered`]).
    unrecovered: tokio::sync::mpsc::Sender<Unrecovered>,
    unrecovered_rx: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<Unrecovered>>>>,
}

/// A message WhatsApp handed over again whose Signal state was saved but whose content never
/// was: the client decrypted it before a crash, a Signal-state write saved that decrypt's
/// ratchet step, and the process died before the message's pending row (or its event) was
/// written. Decrypting it again fails as an old counter and whatsapp-rust acknowledges it as
/// a duplicate, so the only copy left is the sender's: the session asks the sender to send it
/// again (a retry receipt, as for any message a device cannot decrypt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecovered {
    /// The chat JID as whatsapp-rust names it (a group, or the sender's user).
    pub chat: String,
    /// The sender's device JID.
    pub sender: String,
    /// The WhatsApp message id.
    pub id: String,
}

/// How many unrecovered messages may wait for the session to ask for them again; more are
/// logged and dropped (the ask is best effort; the loss is logged either way).
const UNRECOVERED_QUEUE: usize = 256;

impl RedbBackend {
    pub(crate) fn new(store: Store, session: &str) -> Self {
        let (unrecovered, rx) = tokio::sync::mpsc::channel(UNRECOVERED_QUEUE);
        RedbBackend {
            session: session.into(),
            retired: Arc::default(),
            gate: Arc::new(WireGate::new(WIRE_WAIT_MAX, Arc::clone(store.wire_stats()))),
            store,
            unrecovered,
            unrecovered_rx: Arc::new(std::sync::Mutex::new(Some(rx))),
        }
    }

    /// The messages this backend found decrypted but never kept ([`Unrecovered`]), for the
    /// session to ask their senders for. The receiver is handed out once.
    pub fn take_unrecovered(&self) -> Option<tokio::sync::mpsc::Receiver<Unrecovered>> {
        self.unrecovered_rx.lock().ok().and_then(|mut rx| rx.take())
    }

    /// The gate this backend reports to, for the client's transport.
    pub fn wire_gate(&self) -> Arc<WireGate> {
        Arc::clone(&self.gate)
    }

    /// A write of Signal state (sessions, sender keys), reported to the gate once committed.
    async fn write_signal<F>(&self, f: F) -> WaResult<()>
    where
        F: FnMut(&WriteTransaction, &str) -> Result<()> + Send + 'static,
    {
        let token = self.gate.write_begins();
        self.write(f).await?;
        self.gate.write_committed(token);
        Ok(())
    }

    /// Refuse every later write through this backend (and its clones). Writes already
    /// committed stay; a write that starts after this fails.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One read transaction on a blocking thread, handed this backend's session id.
    async fn read<T, F>(&self, f: F) -> WaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction, &str) -> Result<T> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        self.store
            .read(move |txn| f(txn, &session))
            .await
            .map_err(to_wa)
    }

    /// One write transaction on a blocking thread, committed if `f` succeeds.
    async fn write<T, F>(&self, mut f: F) -> WaResult<T>
    where
        T: Send + 'static,
        F: FnMut(&WriteTransaction, &str) -> Result<T> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        let retired = Arc::clone(&self.retired);
        self.store
            .write(move |txn| {
                // Checked inside the transaction: writers are serialized, so no write can
                // land after a wipe that followed `retire`.
                if retired.load(Ordering::Acquire) {
                    return Err(StoreError::Invalid(format!(
                        "session {session}: this client's backend is retired"
                    )));
                }
                f(txn, &session)
            })
            .await
            .map_err(to_wa)
    }
}

// ---------------------------------------------------------------------------
// SignalStore
// ---------------------------------------------------------------------------

#[async_trait]
impl SignalStore for RedbBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> WaResult<()> {
        let address = address.to_owned();
        self.write(move |txn, s| {
            txn.open_table(IDENTITIES)?
                .insert((s, address.as_str()), key.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> WaResult<()> {
        if identities.is_empty() {
            return Ok(());
        }
        let identities = identities.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(IDENTITIES)?;
            for (address, key) in &identities {
                table.insert((s, &**address), key.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn load_identity(&self, address: &str) -> WaResult<Option<[u8; 32]>> {
        let address = address.to_owned();
        self.read(move |txn, s| {
            txn.open_table(IDENTITIES)?
                .get((s, address.as_str()))?
                .map(|v| fixed::<32>("wa_identities", v.value()))
                .transpose()
        })
        .await
    }

    async fn delete_identity(&self, address: &str) -> WaResult<()> {
        let address = address.to_owned();
        self.write(move |txn, s| {
            txn.open_table(IDENTITIES)?.remove((s, address.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, address: &str) -> WaResult<Option<Bytes>> {
        let address = address.to_owned();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(SESSIONS)?
                .get((s, address.as_str()))?
                .map(|v| Bytes::copy_from_slice(v.value())))
        })
        .await
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> WaResult<()> {
        let address = address.to_owned();
        let session = session.to_vec();
        self.write_signal(move |txn, s| {
            txn.open_table(SESSIONS)?
                .insert((s, address.as_str()), session.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        if sessions.is_empty() {
            return Ok(());
        }
        let sessions = sessions.to_vec();
        self.write_signal(move |txn, s| {
            let mut table = txn.open_table(SESSIONS)?;
            for (address, record) in &sessions {
                table.insert((s, &**address), &record[..])?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_session(&self, address: &str) -> WaResult<()> {
        let address = address.to_owned();
        self.write(move |txn, s| {
            txn.open_table(SESSIONS)?.remove((s, address.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn has_session(&self, address: &str) -> WaResult<bool> {
        let address = address.to_owned();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(SESSIONS)?
                .get((s, address.as_str()))?
                .is_some())
        })
        .await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> WaResult<bool> {
        // Addresses are `user@server` or `user:device@server`: look for keys starting with
        // `user:` or `user@`. Each is a range whose end is the next character up.
        let bounds = [(':', ';'), ('@', 'A')]
            .map(|(from, to)| (format!("{user}{from}"), format!("{user}{to}")));
        self.read(move |txn, s| {
            let sessions = txn.open_table(SESSIONS)?;
            let identities = txn.open_table(IDENTITIES)?;
            for (lo, hi) in &bounds {
                let range = (s, lo.as_str())..(s, hi.as_str());
                if sessions.range(range.clone())?.next().transpose()?.is_some()
                    || identities.range(range)?.next().transpose()?.is_some()
                {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> WaResult<()> {
        let record = record.to_vec();
        self.write(move |txn, s| {
            txn.open_table(PREKEYS)?
                .insert((s, id), (uploaded, record.as_slice()))?;
            Ok(())
        })
        .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys = keys.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(PREKEYS)?;
            for (id, record) in &keys {
                table.insert((s, *id), (uploaded, &record[..]))?;
            }
            Ok(())
        })
        .await
    }

    async fn load_prekey(&self, id: u32) -> WaResult<Option<Bytes>> {
        self.read(move |txn, s| {
            Ok(txn
                .open_table(PREKEYS)?
                .get((s, id))?
                .map(|v| Bytes::copy_from_slice(v.value().1)))
        })
        .await
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> WaResult<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.read(move |txn, s| {
            let table = txn.open_table(PREKEYS)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = table.get((s, id))? {
                    out.push((id, Bytes::copy_from_slice(v.value().1)));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> WaResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(PREKEYS)?;
            for &id in &ids {
                // Update only: a key consumed since the upload snapshot stays deleted.
                let record = match table.get((s, id))? {
                    Some(v) if !v.value().0 => v.value().1.to_vec(),
                    _ => continue,
                };
                table.insert((s, id), (true, record.as_slice()))?;
            }
            Ok(())
        })
        .await
    }

    async fn remove_prekey(&self, id: u32) -> WaResult<()> {
        self.write(move |txn, s| {
            txn.open_table(PREKEYS)?.remove((s, id))?;
            Ok(())
        })
        .await
    }

    async fn get_max_prekey_id(&self) -> WaResult<u32> {
        self.read(move |txn, s| {
            let table = txn.open_table(PREKEYS)?;
            let last = table.range((s, 0u32)..=(s, u32::MAX))?.next_back();
            Ok(match last {
                Some(row) => row?.0.value().1,
                None => 0,
            })
        })
        .await
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> WaResult<()> {
        let record = record.to_vec();
        self.write(move |txn, s| {
            txn.open_table(SIGNED_PREKEYS)?
                .insert((s, id), record.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn load_signed_prekey(&self, id: u32) -> WaResult<Option<Vec<u8>>> {
        self.read(move |txn, s| {
            Ok(txn
                .open_table(SIGNED_PREKEYS)?
                .get((s, id))?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn load_all_signed_prekeys(&self) -> WaResult<Vec<(u32, Vec<u8>)>> {
        self.read(move |txn, s| {
            let table = txn.open_table(SIGNED_PREKEYS)?;
            let mut out = Vec::new();
            for row in table.range((s, 0u32)..=(s, u32::MAX))? {
                let (k, v) = row?;
                out.push((k.value().1, v.value().to_vec()));
            }
            Ok(out)
        })
        .await
    }

    async fn remove_signed_prekey(&self, id: u32) -> WaResult<()> {
        self.write(move |txn, s| {
            txn.open_table(SIGNED_PREKEYS)?.remove((s, id))?;
            Ok(())
        })
        .await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> WaResult<()> {
        let address = address.to_owned();
        let record = record.to_vec();
        self.write_signal(move |txn, s| {
            txn.open_table(SENDER_KEYS)?
                .insert((s, address.as_str()), record.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> WaResult<()> {
        if sender_keys.is_empty() {
            return Ok(());
        }
        let sender_keys = sender_keys.to_vec();
        self.write_signal(move |txn, s| {
            let mut table = txn.open_table(SENDER_KEYS)?;
            for (address, record) in &sender_keys {
                table.insert((s, &**address), &record[..])?;
            }
            Ok(())
        })
        .await
    }

    async fn get_sender_key(&self, address: &str) -> WaResult<Option<Vec<u8>>> {
        let address = address.to_owned();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(SENDER_KEYS)?
                .get((s, address.as_str()))?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn delete_sender_key(&self, address: &str) -> WaResult<()> {
        let address = address.to_owned();
        self.write(move |txn, s| {
            txn.open_table(SENDER_KEYS)?.remove((s, address.as_str()))?;
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// AppSyncStore
// ---------------------------------------------------------------------------

#[async_trait]
impl AppSyncStore for RedbBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> WaResult<Option<AppStateSyncKey>> {
        let key_id = key_id.to_vec();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(SYNC_KEYS)?
                .get((s, key_id.as_slice()))?
                .map(|v| {
                    let (timestamp, key_data, fingerprint) = v.value();
                    AppStateSyncKey {
                        key_data: key_data.to_vec(),
                        fingerprint: fingerprint.to_vec(),
                        timestamp,
                    }
                }))
        })
        .await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> WaResult<()> {
        let key_id = key_id.to_vec();
        self.write(move |txn, s| {
            txn.open_table(SYNC_KEYS)?.insert(
                (s, key_id.as_slice()),
                (
                    key.timestamp,
                    key.key_data.as_slice(),
                    key.fingerprint.as_slice(),
                ),
            )?;
            txn.open_table(META)?
                .insert((s, META_LATEST_SYNC_KEY), key_id.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn get_version(&self, name: &str) -> WaResult<HashState> {
        let name = name.to_owned();
        self.read(
            move |txn, s| match txn.open_table(APP_VERSIONS)?.get((s, name.as_str()))? {
                Some(v) => from_json("wa_app_versions", v.value()),
                None => Ok(HashState::default()),
            },
        )
        .await
    }

    async fn set_version(&self, name: &str, state: HashState) -> WaResult<()> {
        let name = name.to_owned();
        self.write(move |txn, s| {
            txn.open_table(APP_VERSIONS)?
                .insert((s, name.as_str()), to_json(&state)?.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> WaResult<()> {
        if mutations.is_empty() {
            return Ok(());
        }
        let name = name.to_owned();
        let mutations = mutations.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(MUTATION_MACS)?;
            for m in &mutations {
                table.insert(
                    (s, name.as_str(), m.index_mac.as_slice()),
                    m.value_mac.as_slice(),
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> WaResult<Option<Vec<u8>>> {
        let name = name.to_owned();
        let index_mac = index_mac.to_vec();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(MUTATION_MACS)?
                .get((s, name.as_str(), index_mac.as_slice()))?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> WaResult<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let name = name.to_owned();
        let index_macs = index_macs.to_vec();
        self.read(move |txn, s| {
            let table = txn.open_table(MUTATION_MACS)?;
            let mut out = HashMap::with_capacity(index_macs.len());
            for index_mac in index_macs {
                if let Some(v) = table.get((s, name.as_str(), index_mac.as_slice()))? {
                    out.insert(index_mac, v.value().to_vec());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> WaResult<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        let name = name.to_owned();
        let index_macs = index_macs.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(MUTATION_MACS)?;
            for index_mac in &index_macs {
                table.remove((s, name.as_str(), index_mac.as_slice()))?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_mutation_macs(&self, name: &str) -> WaResult<()> {
        let name = name.to_owned();
        self.write(move |txn, s| {
            let next = after(&name);
            txn.open_table(MUTATION_MACS)?.retain_in(
                (s, name.as_str(), NO_BYTES)..(s, next.as_str(), NO_BYTES),
                |_, _| false,
            )?;
            Ok(())
        })
        .await
    }

    async fn get_latest_sync_key_id(&self) -> WaResult<Option<Vec<u8>>> {
        self.read(move |txn, s| {
            Ok(txn
                .open_table(META)?
                .get((s, META_LATEST_SYNC_KEY))?
                .map(|v| v.value().to_vec()))
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// ProtocolStore
// ---------------------------------------------------------------------------

#[async_trait]
impl ProtocolStore for RedbBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> WaResult<Vec<(String, bool)>> {
        let group = group_jid.to_owned();
        self.read(move |txn, s| {
            let table = txn.open_table(SKDM_DEVICES)?;
            let next = after(&group);
            let mut out = Vec::new();
            for row in table.range((s, group.as_str(), "")..(s, next.as_str(), ""))? {
                let (k, v) = row?;
                out.push((k.value().2.to_owned(), v.value()));
            }
            Ok(out)
        })
        .await
    }

    async fn set_sender_key_status(
        &self,
        group_jid: &str,
        entries: &[(&str, bool)],
    ) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let group = group_jid.to_owned();
        let entries: Vec<(String, bool)> =
            entries.iter().map(|(d, k)| ((*d).to_owned(), *k)).collect();
        self.write(move |txn, s| {
            let mut table = txn.open_table(SKDM_DEVICES)?;
            for (device, has_key) in &entries {
                table.insert((s, group.as_str(), device.as_str()), *has_key)?;
            }
            Ok(())
        })
        .await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> WaResult<()> {
        let group = group_jid.to_owned();
        self.write(move |txn, s| {
            let next = after(&group);
            txn.open_table(SKDM_DEVICES)?
                .retain_in((s, group.as_str(), "")..(s, next.as_str(), ""), |_, _| {
                    false
                })?;
            Ok(())
        })
        .await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> WaResult<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let devices: std::collections::HashSet<String> =
            device_jids.iter().map(|d| (*d).to_owned()).collect();
        self.write(move |txn, s| {
            // Rows are keyed by group first; this walks the session's rows only (a rare
            // cleanup, not worth a second index).
            let next = after(s);
            txn.open_table(SKDM_DEVICES)?
                .retain_in((s, "", "")..(next.as_str(), "", ""), |(_, _, device), _| {
                    !devices.contains(device)
                })?;
            Ok(())
        })
        .await
    }

    async fn clear_all_sender_key_devices(&self) -> WaResult<()> {
        self.write(move |txn, s| {
            let next = after(s);
            txn.open_table(SKDM_DEVICES)?
                .retain_in((s, "", "")..(next.as_str(), "", ""), |_, _| false)?;
            Ok(())
        })
        .await
    }

    async fn get_lid_mapping(&self, lid: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let lid = lid.to_owned();
        self.read(move |txn, s| {
            txn.open_table(LID_PN)?
                .get((s, lid.as_str()))?
                .map(|v| from_json("wa_lid_pn", v.value()))
                .transpose()
        })
        .await
    }

    async fn get_pn_mapping(&self, phone: &str) -> WaResult<Option<LidPnMappingEntry>> {
        let phone = phone.to_owned();
        self.read(move |txn, s| {
            let Some(lid) = txn
                .open_table(PN_LID)?
                .get((s, phone.as_str()))?
                .map(|v| v.value().to_owned())
            else {
                return Ok(None);
            };
            txn.open_table(LID_PN)?
                .get((s, lid.as_str()))?
                .map(|v| from_json("wa_lid_pn", v.value()))
                .transpose()
        })
        .await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> WaResult<()> {
        let entry = entry.clone();
        self.write(move |txn, s| put_lid_mapping_row(txn, s, &entry))
            .await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> WaResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        self.write(move |txn, s| {
            for entry in &entries {
                put_lid_mapping_row(txn, s, entry)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_all_lid_mappings(&self) -> WaResult<Vec<LidPnMappingEntry>> {
        self.read(move |txn, s| {
            let next = after(s);
            let table = txn.open_table(LID_PN)?;
            let mut out = Vec::new();
            for row in table.range((s, "")..(next.as_str(), ""))? {
                let (_, v) = row?;
                out.push(from_json("wa_lid_pn", v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn save_base_key(
        &self,
        address: &str,
        message_id: &str,
        base_key: &[u8],
    ) -> WaResult<()> {
        let address = address.to_owned();
        let message_id = message_id.to_owned();
        let base_key = base_key.to_vec();
        self.write(move |txn, s| {
            txn.open_table(BASE_KEYS)?.insert(
                (s, address.as_str(), message_id.as_str()),
                base_key.as_slice(),
            )?;
            Ok(())
        })
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> WaResult<bool> {
        let address = address.to_owned();
        let message_id = message_id.to_owned();
        let current = current_base_key.to_vec();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(BASE_KEYS)?
                .get((s, address.as_str(), message_id.as_str()))?
                .is_some_and(|v| v.value() == current.as_slice()))
        })
        .await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> WaResult<()> {
        let address = address.to_owned();
        let message_id = message_id.to_owned();
        self.write(move |txn, s| {
            txn.open_table(BASE_KEYS)?
                .remove((s, address.as_str(), message_id.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> WaResult<()> {
        self.write(move |txn, s| {
            txn.open_table(DEVICE_LISTS)?
                .insert((s, record.user.as_str()), to_json(&record)?.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> WaResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(move |txn, s| {
            let mut table = txn.open_table(DEVICE_LISTS)?;
            for record in &records {
                table.insert((s, record.user.as_str()), to_json(record)?.as_slice())?;
            }
            Ok(())
        })
        .await
    }

    async fn get_devices(&self, user: &str) -> WaResult<Option<DeviceListRecord>> {
        let user = user.to_owned();
        self.read(move |txn, s| {
            txn.open_table(DEVICE_LISTS)?
                .get((s, user.as_str()))?
                .map(|v| from_json("wa_device_lists", v.value()))
                .transpose()
        })
        .await
    }

    async fn delete_devices(&self, user: &str) -> WaResult<()> {
        let user = user.to_owned();
        self.write(move |txn, s| {
            txn.open_table(DEVICE_LISTS)?.remove((s, user.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> WaResult<Option<Vec<u8>>> {
        let group = group_jid.to_owned();
        self.read(move |txn, s| {
            Ok(txn
                .open_table(GROUP_META)?
                .get((s, group.as_str()))?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> WaResult<()> {
        let group = group_jid.to_owned();
        let blob = blob.to_vec();
        self.write(move |txn, s| {
            txn.open_table(GROUP_META)?
                .insert((s, group.as_str()), blob.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> WaResult<()> {
        let group = group_jid.to_owned();
        self.write(move |txn, s| {
            txn.open_table(GROUP_META)?.remove((s, group.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn get_tc_token(&self, jid: &str) -> WaResult<Option<TcTokenEntry>> {
        let jid = jid.to_owned();
        self.read(move |txn, s| {
            Ok(txn.open_table(TC_TOKENS)?.get((s, jid.as_str()))?.map(|v| {
                let (token_timestamp, sender_timestamp, token) = v.value();
                TcTokenEntry {
                    token: token.to_vec(),
                    token_timestamp,
                    sender_timestamp,
                }
            }))
        })
        .await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> WaResult<()> {
        let jid = jid.to_owned();
        let entry = entry.clone();
        self.write(move |txn, s| {
            txn.open_table(TC_TOKENS)?.insert(
                (s, jid.as_str()),
                (
                    entry.token_timestamp,
                    entry.sender_timestamp,
                    entry.token.as_slice(),
                ),
            )?;
            Ok(())
        })
        .await
    }

    async fn delete_tc_token(&self, jid: &str) -> WaResult<()> {
        let jid = jid.to_owned();
        self.write(move |txn, s| {
            txn.open_table(TC_TOKENS)?.remove((s, jid.as_str()))?;
            Ok(())
        })
        .await
    }

    async fn get_all_tc_token_jids(&self) -> WaResult<Vec<String>> {
        self.read(move |txn, s| {
            let next = after(s);
            let table = txn.open_table(TC_TOKENS)?;
            let mut out = Vec::new();
            for row in table.range((s, "")..(next.as_str(), ""))? {
                let (k, _) = row?;
                out.push(k.value().1.to_owned());
            }
            Ok(out)
        })
        .await
    }

    async fn delete_expired_tc_tokens(
        &self,
        token_cutoff: i64,
        sender_cutoff: i64,
    ) -> WaResult<u32> {
        self.write(move |txn, s| {
            let next = after(s);
            let mut removed = 0u32;
            txn.open_table(TC_TOKENS)?.retain_in(
                (s, "")..(next.as_str(), ""),
                |_, (token_timestamp, sender_timestamp, token)| {
                    let token_live = !token.is_empty() && token_timestamp >= token_cutoff;
                    let sender_live = sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
                    let keep = token_live || sender_live;
                    if !keep {
                        removed += 1;
                    }
                    keep
                },
            )?;
            Ok(removed)
        })
        .await
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> WaResult<()> {
        let jid = jid.to_owned();
        self.write(move |txn, s| {
            let mut table = txn.open_table(TC_TOKENS)?;
            let existing = table.get((s, jid.as_str()))?.map(|v| {
                let (token_timestamp, sender, token) = v.value();
                (token_timestamp, sender, token.to_vec())
            });
            match existing {
                Some((token_timestamp, old_sender, token)) => {
                    let merged = old_sender.map_or(sender_timestamp, |e| e.max(sender_timestamp));
                    if old_sender != Some(merged) {
                        table.insert(
                            (s, jid.as_str()),
                            (token_timestamp, Some(merged), token.as_slice()),
                        )?;
                    }
                }
                None => {
                    table.insert(
                        (s, jid.as_str()),
                        (sender_timestamp, Some(sender_timestamp), NO_BYTES),
                    )?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> WaResult<()> {
        let jid = jid.to_owned();
        let token = token.to_vec();
        self.write(move |txn, s| {
            let mut table = txn.open_table(TC_TOKENS)?;
            let existing = table.get((s, jid.as_str()))?.map(|v| {
                let (old_ts, sender, old_token) = v.value();
                (old_ts, sender, old_token.is_empty())
            });
            let sender = match existing {
                // Newer-wins: a stale write never clobbers a fresher real token; a
                // placeholder never blocks the first real one.
                Some((old_ts, _, false)) if token_timestamp < old_ts => return Ok(()),
                Some((_, sender, _)) => sender,
                None => None,
            };
            table.insert(
                (s, jid.as_str()),
                (token_timestamp, sender, token.as_slice()),
            )?;
            Ok(())
        })
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> WaResult<()> {
        let chat = chat_jid.to_owned();
        let id = message_id.to_owned();
        let payload = payload.to_vec();
        let now = wacore::time::now_secs();
        self.write(move |txn, s| {
            let mut rows = txn.open_table(SENT)?;
            let mut by_time = txn.open_table(SENT_BY_TIME)?;
            let key = (s, chat.as_str(), id.as_str());
            let old_ts = rows
                .insert(key, (now, payload.as_slice()))?
                .map(|v| v.value().0);
            if let Some(old_ts) = old_ts {
                by_time.remove((s, old_ts, chat.as_str(), id.as_str()))?;
            }
            by_time.insert((s, now, chat.as_str(), id.as_str()), ())?;
            Ok(())
        })
        .await
    }

    async fn take_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        let chat = chat_jid.to_owned();
        let id = message_id.to_owned();
        self.write(move |txn, s| {
            let mut rows = txn.open_table(SENT)?;
            let Some((ts, payload)) = rows.remove((s, chat.as_str(), id.as_str()))?.map(|v| {
                let (ts, payload) = v.value();
                (ts, payload.to_vec())
            }) else {
                return Ok(None);
            };
            txn.open_table(SENT_BY_TIME)?
                .remove((s, ts, chat.as_str(), id.as_str()))?;
            Ok(Some(payload))
        })
        .await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        self.write(move |txn, s| {
            let mut expired = Vec::new();
            {
                let mut by_time = txn.open_table(SENT_BY_TIME)?;
                let range = before_bounds((s, i64::MIN, "", ""), (s, cutoff_timestamp, "", ""));
                for row in by_time.extract_from_if(range, |_, _| true)? {
                    let (k, _) = row?;
                    let (_, _, chat, id) = k.value();
                    expired.push((chat.to_owned(), id.to_owned()));
                }
            }
            let mut rows = txn.open_table(SENT)?;
            for (chat, id) in &expired {
                rows.remove((s, chat.as_str(), id.as_str()))?;
            }
            Ok(u32::try_from(expired.len()).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> WaResult<()> {
        // Not a decrypt: whatsapp-rust writes (and deletes) one probe row here at start, to
        // learn whether the backend keeps pending rows; decrypted messages come in batches.
        let (chat, sender, id) = (chat.to_owned(), sender.to_owned(), id.to_owned());
        let message = message.to_vec();
        let now = wacore::time::now_secs();
        self.write(move |txn, s| store_pending_row(txn, s, now, &chat, &sender, &id, &message))
            .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        // whatsapp-rust asks this of a message that decrypted as a duplicate (an old
        // counter), to replay a buffered copy, and acknowledges it when there is none. With
        // neither a buffered copy nor a received record, the message was never kept: see
        // [`Unrecovered`].
        let (c, se, i) = (chat.to_owned(), sender.to_owned(), id.to_owned());
        let (row, kept) = self
            .read(move |txn, s| {
                let row = txn
                    .open_table(PENDING_IN)?
                    .get((s, c.as_str(), se.as_str(), i.as_str()))?
                    .map(|v| v.value().1.to_vec());
                let kept = row.is_some() || super::inbound::knows_wa_id(txn, s, &c, &i)?;
                Ok((row, kept))
            })
            .await?;
        if !kept {
            let lost = Unrecovered {
                chat: chat.to_owned(),
                sender: sender.to_owned(),
                id: id.to_owned(),
            };
            // Logged as a warning by the session once it knows the sender is not this
            // account (its own messages have no received record).
            tracing::debug!(session = %self.session, chat, sender, id, "a duplicate with no copy kept");
            if let Err(e) = self.unrecovered.try_send(lost) {
                tracing::warn!(session = %self.session, id, error = %e, "cannot ask for the message again");
            }
        }
        Ok(row)
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> WaResult<()> {
        let (chat, sender, id) = (chat.to_owned(), sender.to_owned(), id.to_owned());
        self.write(move |txn, s| delete_pending_row(txn, s, &chat, &sender, &id))
            .await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        self.write(move |txn, s| {
            let mut expired = Vec::new();
            {
                let mut by_time = txn.open_table(PENDING_IN_BY_TIME)?;
                let range =
                    before_bounds((s, i64::MIN, "", "", ""), (s, cutoff_timestamp, "", "", ""));
                for row in by_time.extract_from_if(range, |_, _| true)? {
                    let (k, _) = row?;
                    let (_, _, chat, sender, id) = k.value();
                    expired.push((chat.to_owned(), sender.to_owned(), id.to_owned()));
                }
            }
            let mut rows = txn.open_table(PENDING_IN)?;
            for (chat, sender, id) in &expired {
                rows.remove((s, chat.as_str(), sender.as_str(), id.as_str()))?;
            }
            Ok(u32::try_from(expired.len()).unwrap_or(u32::MAX))
        })
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> WaResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // The library writes these rows right after the decrypts: Signal state in memory is
        // now ahead of redb until its next flush.
        self.gate.decrypted();
        let rows: Vec<(String, String, String, Vec<u8>)> = rows
            .iter()
            .map(|r| {
                (
                    r.chat.to_owned(),
                    r.sender.to_owned(),
                    r.id.to_owned(),
                    r.message.to_vec(),
                )
            })
            .collect();
        let now = wacore::time::now_secs();
        self.write(move |txn, s| {
            for (chat, sender, id, message) in &rows {
                store_pending_row(txn, s, now, chat, sender, id, message)?;
            }
            Ok(())
        })
        .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> WaResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<(String, String, String)> = keys
            .iter()
            .map(|k| (k.chat.to_owned(), k.sender.to_owned(), k.id.to_owned()))
            .collect();
        self.write(move |txn, s| {
            for (chat, sender, id) in &keys {
                delete_pending_row(txn, s, chat, sender, id)?;
            }
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// MsgSecretStore
// ---------------------------------------------------------------------------

#[async_trait]
impl MsgSecretStore for RedbBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> WaResult<usize> {
        let stored = entries.len();
        if entries.is_empty() {
            return Ok(0);
        }
        self.write(move |txn, s| {
            for entry in &entries {
                put_msg_secret_row(txn, s, entry)?;
            }
            Ok(stored)
        })
        .await
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> WaResult<Option<(Vec<u8>, i64)>> {
        let (chat, sender, msg_id) = (chat.to_owned(), sender.to_owned(), msg_id.to_owned());
        self.read(move |txn, s| {
            let table = txn.open_table(MSG_SECRETS)?;
            let Some(v) = table.get((s, chat.as_str(), sender.as_str(), msg_id.as_str()))? else {
                return Ok(None);
            };
            let (_, message_ts, secret) = v.value();
            let secret: MessageSecret = fixed("wa_msg_secrets", secret)?;
            Ok(Some((secret.to_vec(), message_ts)))
        })
        .await
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> WaResult<u32> {
        self.write(move |txn, s| {
            let next = after(s);
            // Deadlines at or before the cutoff; rows without one (0) are not indexed.
            let high = match cutoff_timestamp.checked_add(1) {
                Some(c) => (s, c, "", "", ""),
                None => (next.as_str(), i64::MIN, "", "", ""),
            };
            let mut expired = Vec::new();
            {
                let mut index = txn.open_table(MSG_SECRET_EXPIRY)?;
                let range = before_bounds((s, i64::MIN, "", "", ""), high);
                for row in index.extract_from_if(range, |_, _| true)? {
                    let (k, _) = row?;
                    let (_, _, chat, sender, msg_id) = k.value();
                    expired.push((chat.to_owned(), sender.to_owned(), msg_id.to_owned()));
                }
            }
            let mut rows = txn.open_table(MSG_SECRETS)?;
            for (chat, sender, msg_id) in &expired {
                rows.remove((s, chat.as_str(), sender.as_str(), msg_id.as_str()))?;
            }
            Ok(u32::try_from(expired.len()).unwrap_or(u32::MAX))
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// DeviceStore
// ---------------------------------------------------------------------------

#[async_trait]
impl DeviceStore for RedbBackend {
    async fn save(&self, device: &Device) -> WaResult<()> {
        let json = to_json(device).map_err(to_wa)?;
        self.write(move |txn, s| {
            txn.open_table(META)?
                .insert((s, META_DEVICE), json.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        self.read(move |txn, s| {
            txn.open_table(META)?
                .get((s, META_DEVICE))?
                .map(|v| from_json("wa_meta", v.value()))
                .transpose()
        })
        .await
    }

    async fn exists(&self) -> WaResult<bool> {
        self.read(move |txn, s| Ok(txn.open_table(META)?.get((s, META_DEVICE))?.is_some()))
            .await
    }

    async fn create(&self) -> WaResult<i32> {
        self.write(move |txn, s| {
            let mut meta = txn.open_table(META)?;
            let id = match meta.get((s, META_NEXT_DEVICE_ID))? {
                Some(v) => u32::from_be_bytes(fixed("wa_meta", v.value())?),
                None => 1,
            };
            let next = id
                .checked_add(1)
                .ok_or_else(|| corrupt("wa_meta", "device id counter overflow"))?;
            meta.insert((s, META_NEXT_DEVICE_ID), next.to_be_bytes().as_slice())?;
            // Materialize a fresh device (fresh keys) so `exists()` holds from now on and a
            // restart before the first save keeps the same identity.
            if meta.get((s, META_DEVICE))?.is_none() {
                let json = to_json(&Device::new())?;
                meta.insert((s, META_DEVICE), json.as_slice())?;
            }
            i32::try_from(id).map_err(|_| corrupt("wa_meta", "device id out of range"))
        })
        .await
    }
}
