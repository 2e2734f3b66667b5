//! The persistent send queue: every message wagate accepts, in order per session.
//!
//! Accepted means durable: [`enqueue`] writes the message, its place in the session's queue,
//! its media bytes and its idempotency key in one transaction before the API answers 202.
//!
//! Sending is crash-safe by recording WhatsApp's message id before the network send
//! ([`mark_sending`], committed first). After a crash the message is still first in its queue
//! with that id, and the sender sends it again *with the same id*: WhatsApp identifies a
//! message by (chat, sender, id), so a recipient that already has it treats the second copy as
//! the same message. Transport is at-least-once; what the recipient sees is exactly once.
//!
//! Layout (every key starts with the session id):
//! - `msg`       (session, msg id) -> [`MessageRecord`] as JSON
//! - `msg_queue` (session, seq) -> msg id: the messages still to send, in acceptance order
//! - `msg_seq`   session -> next seq
//! - `msg_idem`  (session, Idempotency-Key) -> msg id
//! - `msg_wa`    (session, WhatsApp id) -> msg id: receipts find their message
//! - `msg_blob`  (session, msg id) -> media bytes, dropped once sent
//! - `msg_depth` session -> how many rows `msg_queue` holds for it (kept in step, so the
//!   depth is one read, not a count)
//!
//! Finished messages stay until the retention removes them ([`prune`]); a removed message is
//! unknown from then on.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

pub(super) const MSG: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("msg");
const QUEUE: TableDefinition<(&str, u64), &str> = TableDefinition::new("msg_queue");
const SEQ: TableDefinition<&str, u64> = TableDefinition::new("msg_seq");
const IDEM: TableDefinition<(&str, &str), &str> = TableDefinition::new("msg_idem");
const WA: TableDefinition<(&str, &str), &str> = TableDefinition::new("msg_wa");
const BLOB: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("msg_blob");
const DEPTH: TableDefinition<&str, u64> = TableDefinition::new("msg_depth");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(MSG)?;
    txn.open_table(QUEUE)?;
    txn.open_table(SEQ)?;
    txn.open_table(IDEM)?;
    txn.open_table(WA)?;
    txn.open_table(BLOB)?;
    txn.open_table(DEPTH)?;
    Ok(())
}

fn add_depth(txn: &WriteTransaction, session: &str, delta: i64) -> Result<()> {
    let mut t = txn.open_table(DEPTH)?;
    let now = t.get(session)?.map(|v| v.value()).unwrap_or(0);
    t.insert(session, now.saturating_add_signed(delta))?;
    Ok(())
}

/// Where a message is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Queued,
    /// Held by the duplicate-content guard.
    Held,
    /// WhatsApp's id is recorded and the send is under way (or was, before a crash).
    Sending,
    Sent,
    Delivered,
    Read,
    Cancelled,
    Failed,
}

impl MessageStatus {
    /// Still waiting in the queue.
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            MessageStatus::Queued | MessageStatus::Held | MessageStatus::Sending
        )
    }
}

/// One accepted message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageRecord {
    /// `msg_` + ULID, unique in the session.
    pub id: String,
    pub session: String,
    pub kind: String,
    /// The recipient's JID.
    pub to: String,
    /// The recipient's phone-number JID, when known (recorded before the first send).
    #[serde(default)]
    pub to_phone: Option<String>,
    /// The recipient's LID, when known (recorded before the first send).
    #[serde(default)]
    pub to_lid: Option<String>,
    /// The composed content, as the engine stores it.
    pub content: serde_json::Value,
    pub status: MessageStatus,
    #[serde(default)]
    pub reason: Option<String>,
    /// WhatsApp's message id, fixed before the first send attempt.
    #[serde(default)]
    pub wa_id: Option<String>,
    pub seq: u64,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    pub created_at: i64,
    #[serde(default)]
    pub sent_at: Option<i64>,
    #[serde(default)]
    pub delivered_at: Option<i64>,
    #[serde(default)]
    pub read_at: Option<i64>,
    #[serde(default)]
    pub failed_at: Option<i64>,
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    /// A poll's 32-byte message secret (base64), fixed with its WhatsApp id before the first
    /// send so a resend carries the same one and votes on the poll can be decrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When an edit of this message was sent, and its newest text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_text: Option<String>,
    /// When its revoke (delete for everyone) was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// What a sent edit or revoke did to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Edited { text: String },
    Revoked,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Held => "held",
            MessageStatus::Sending => "sending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Cancelled => "cancelled",
            MessageStatus::Failed => "failed",
        }
    }
}

impl MessageRecord {
    /// The `data` of a `message.sent` / `delivered` / `read` / `failed` event.
    pub fn update(&self) -> crate::events::MessageUpdate {
        crate::events::MessageUpdate {
            id: self.id.clone(),
            wa_id: self.wa_id.clone(),
            kind: self.kind.clone(),
            to: self.to.clone(),
            to_phone: self.to_phone.clone(),
            to_lid: self.to_lid.clone(),
            status: self.status.as_str().to_string(),
            reason: self.reason.clone(),
            target: self.target().map(str::to_string),
        }
    }

    /// For an edit or a revoke: the id of the message it changes (its stored content's
    /// `target`).
    pub fn target(&self) -> Option<&str> {
        self.content
            .get("content")
            .and_then(|c| c.get("target"))
            .and_then(|t| t.as_str())
    }
}

/// What the API hands the queue.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub kind: String,
    pub to: String,
    pub content: serde_json::Value,
    /// Media bytes to upload at send time.
    pub blob: Option<Vec<u8>>,
    pub idempotency_key: Option<String>,
    pub now_ms: i64,
    /// The recipient's phone-number JID and LID, where the session already knows them.
    pub to_phone: Option<String>,
    pub to_lid: Option<String>,
}

/// The result of [`enqueue`].
#[derive(Debug, Clone)]
pub struct Enqueued {
    pub record: MessageRecord,
    /// True when the idempotency key named an earlier message: nothing was written.
    pub replayed: bool,
}

fn corrupt(detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "msg",
        detail: detail.to_string(),
    }
}

pub(super) fn decode(bytes: &[u8]) -> Result<MessageRecord> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

fn encode(rec: &MessageRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn put(txn: &WriteTransaction, rec: &MessageRecord) -> Result<()> {
    let mut t = txn.open_table(MSG)?;
    t.insert(
        (rec.session.as_str(), rec.id.as_str()),
        encode(rec)?.as_slice(),
    )?;
    Ok(())
}

fn get_w(txn: &WriteTransaction, session: &str, id: &str) -> Result<Option<MessageRecord>> {
    let t = txn.open_table(MSG)?;
    t.get((session, id))?.map(|v| decode(v.value())).transpose()
}

/// Accept a message: one transaction, durable on commit. A known idempotency key returns the
/// first message instead and writes nothing.
pub fn enqueue(txn: &WriteTransaction, session: &str, new: &NewMessage) -> Result<Enqueued> {
    if let Some(key) = &new.idempotency_key {
        let idem = txn.open_table(IDEM)?;
        let existing = idem
            .get((session, key.as_str()))?
            .map(|v| v.value().to_string());
        drop(idem);
        if let Some(id) = existing {
            let record = get_w(txn, session, &id)?
                .ok_or_else(|| corrupt(format!("idempotency key names missing message {id}")))?;
            return Ok(Enqueued {
                record,
                replayed: true,
            });
        }
    }
    let seq = {
        let mut t = txn.open_table(SEQ)?;
        let seq = t.get(session)?.map(|v| v.value()).unwrap_or(0);
        t.insert(session, seq + 1)?;
        seq
    };
    let record = MessageRecord {
        id: format!("msg_{}", ulid::Ulid::new()),
        session: session.to_string(),
        kind: new.kind.clone(),
        to: new.to.clone(),
        to_phone: new.to_phone.clone(),
        to_lid: new.to_lid.clone(),
        content: new.content.clone(),
        status: MessageStatus::Queued,
        reason: None,
        wa_id: None,
        seq,
        idempotency_key: new.idempotency_key.clone(),
        attempts: 0,
        created_at: new.now_ms,
        sent_at: None,
        delivered_at: None,
        read_at: None,
        failed_at: None,
        cancelled_at: None,
        secret: None,
        edited_at: None,
        edited_text: None,
        revoked_at: None,
    };
    put(txn, &record)?;
    txn.open_table(QUEUE)?
        .insert((session, seq), record.id.as_str())?;
    add_depth(txn, session, 1)?;
    if let Some(key) = &record.idempotency_key {
        txn.open_table(IDEM)?
            .insert((session, key.as_str()), record.id.as_str())?;
    }
    if let Some(blob) = &new.blob {
        txn.open_table(BLOB)?
            .insert((session, record.id.as_str()), blob.as_slice())?;
    }
    Ok(Enqueued {
        record,
        replayed: false,
    })
}

pub fn get(txn: &ReadTransaction, session: &str, id: &str) -> Result<Option<MessageRecord>> {
    let t = txn.open_table(MSG)?;
    t.get((session, id))?.map(|v| decode(v.value())).transpose()
}

/// The message a WhatsApp id belongs to.
pub fn by_wa_id(
    txn: &ReadTransaction,
    session: &str,
    wa_id: &str,
) -> Result<Option<MessageRecord>> {
    let id = {
        let t = txn.open_table(WA)?;
        t.get((session, wa_id))?.map(|v| v.value().to_string())
    };
    match id {
        Some(id) => get(txn, session, &id),
        None => Ok(None),
    }
}

/// The first message still to send (queued or interrupted mid-send), skipping held ones.
pub fn next(txn: &ReadTransaction, session: &str) -> Result<Option<MessageRecord>> {
    let q = txn.open_table(QUEUE)?;
    let msgs = txn.open_table(MSG)?;
    for row in q.range((session, 0u64)..=(session, u64::MAX))? {
        let (_, id) = row?;
        let rec = msgs
            .get((session, id.value()))?
            .map(|v| decode(v.value()))
            .transpose()?
            .ok_or_else(|| corrupt(format!("queued message {} is missing", id.value())))?;
        if rec.status != MessageStatus::Held {
            return Ok(Some(rec));
        }
    }
    Ok(None)
}

/// How many messages wait in the session's queue (held ones included).
pub fn depth(txn: &ReadTransaction, session: &str) -> Result<u64> {
    let t = txn.open_table(DEPTH)?;
    Ok(t.get(session)?.map(|v| v.value()).unwrap_or(0))
}

/// The media bytes of a message, while it has them.
pub fn blob(txn: &ReadTransaction, session: &str, id: &str) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(BLOB)?;
    Ok(t.get((session, id))?.map(|v| v.value().to_vec()))
}

fn must(txn: &WriteTransaction, session: &str, id: &str) -> Result<MessageRecord> {
    get_w(txn, session, id)?.ok_or_else(|| StoreError::Invalid(format!("no message {id}")))
}

fn dequeue(txn: &WriteTransaction, rec: &MessageRecord) -> Result<()> {
    let was_queued = txn
        .open_table(QUEUE)?
        .remove((rec.session.as_str(), rec.seq))?
        .is_some();
    if was_queued {
        add_depth(txn, &rec.session, -1)?;
    }
    txn.open_table(BLOB)?
        .remove((rec.session.as_str(), rec.id.as_str()))?;
    Ok(())
}

/// Fix WhatsApp's id for a message before it is sent (kept if it has one already). `None`:
/// the message is no longer queued (cancelled or held meanwhile) and must not be sent.
pub fn mark_sending(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    wa_id: &str,
) -> Result<Option<MessageRecord>> {
    let mut rec = must(txn, session, id)?;
    // Cancelled or held while the worker paced it (its delay, auto_read, typing): it must
    // not go, whatever the worker read before.
    if !matches!(rec.status, MessageStatus::Queued | MessageStatus::Sending) {
        return Ok(None);
    }
    if rec.wa_id.is_none() {
        rec.wa_id = Some(wa_id.to_string());
        txn.open_table(WA)?.insert((session, wa_id), id)?;
    }
    rec.status = MessageStatus::Sending;
    rec.attempts += 1;
    put(txn, &rec)?;
    Ok(Some(rec))
}

/// Fix a message's secret (base64) before it is sent; one it has already is kept. The
/// record as it now is.
pub fn set_secret(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    secret: &str,
) -> Result<MessageRecord> {
    let mut rec = must(txn, session, id)?;
    if rec.secret.is_none() {
        rec.secret = Some(secret.to_string());
        put(txn, &rec)?;
    }
    Ok(rec)
}

/// Record the recipient's phone-number JID and LID (as far as the client knows them), so
/// every later event of the message carries both.
pub fn set_addresses(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    phone: Option<String>,
    lid: Option<String>,
) -> Result<MessageRecord> {
    let mut rec = must(txn, session, id)?;
    if phone.is_some() {
        rec.to_phone = phone;
    }
    if lid.is_some() {
        rec.to_lid = lid;
    }
    put(txn, &rec)?;
    Ok(rec)
}

/// The server took the message. `None` when it is recorded as sent already: a receipt for
/// it came first (after a crash between its send and this record, [`apply_receipt`] saw the
/// send), so `message.sent` was recorded then and must not be recorded twice.
pub fn mark_sent(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    at: i64,
) -> Result<Option<MessageRecord>> {
    let mut rec = must(txn, session, id)?;
    dequeue(txn, &rec)?;
    if !rec.status.is_pending() {
        return Ok(None);
    }
    rec.status = MessageStatus::Sent;
    rec.sent_at.get_or_insert(at);
    put(txn, &rec)?;
    Ok(Some(rec))
}

/// Record on a sent message that its edit or revoke went out. `None` when the message is
/// gone (the retention removed it).
pub fn mark_changed(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    change: Change,
    at: i64,
) -> Result<Option<MessageRecord>> {
    let Some(mut rec) = get_w(txn, session, id)? else {
        return Ok(None);
    };
    match change {
        Change::Edited { text } => {
            rec.edited_at = Some(at);
            rec.edited_text = Some(text);
        }
        Change::Revoked => rec.revoked_at = Some(at),
    }
    put(txn, &rec)?;
    Ok(Some(rec))
}

/// The message cannot be sent; it leaves the queue with a reason.
pub fn mark_failed(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    reason: &str,
    at: i64,
) -> Result<MessageRecord> {
    let mut rec = must(txn, session, id)?;
    dequeue(txn, &rec)?;
    rec.status = MessageStatus::Failed;
    rec.reason = Some(reason.to_string());
    rec.failed_at = Some(at);
    put(txn, &rec)?;
    Ok(rec)
}

/// Outcome of [`cancel`].
#[derive(Debug, Clone, PartialEq)]
pub enum Cancel {
    Cancelled(MessageRecord),
    /// Too late: the message is already being sent or was sent.
    TooLate(MessageRecord),
    NotFound,
}

/// Cancel a message that has not started sending.
pub fn cancel(txn: &WriteTransaction, session: &str, id: &str, at: i64) -> Result<Cancel> {
    let Some(mut rec) = get_w(txn, session, id)? else {
        return Ok(Cancel::NotFound);
    };
    if !matches!(rec.status, MessageStatus::Queued | MessageStatus::Held) {
        return Ok(Cancel::TooLate(rec));
    }
    dequeue(txn, &rec)?;
    rec.status = MessageStatus::Cancelled;
    rec.cancelled_at = Some(at);
    put(txn, &rec)?;
    Ok(Cancel::Cancelled(rec))
}

/// What a receipt did to a message (see [`apply_receipt`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Receipted {
    /// The message was still in the queue: a crash came between its send and
    /// [`mark_sent`], and the receipt is the first record that it went. The message as sent;
    /// `message.sent` is recorded for it now (the sender's later [`mark_sent`] returns `None`).
    pub sent: Option<MessageRecord>,
    /// The message after the receipt, when its status moved forward.
    pub advanced: Option<MessageRecord>,
}

/// A receipt moved a message forward. Statuses only advance (a late delivery receipt after
/// a read one changes nothing).
pub fn apply_receipt(
    txn: &WriteTransaction,
    session: &str,
    wa_id: &str,
    status: MessageStatus,
    at: i64,
) -> Result<Receipted> {
    let id = {
        let t = txn.open_table(WA)?;
        t.get((session, wa_id))?.map(|v| v.value().to_string())
    };
    let Some(id) = id else {
        return Ok(Receipted::default());
    };
    let mut rec = must(txn, session, &id)?;
    let mut out = Receipted::default();
    if rec.status.is_pending() {
        // A receipt for a message we had not seen acknowledged: the send did happen.
        dequeue(txn, &rec)?;
        rec.status = MessageStatus::Sent;
        rec.sent_at.get_or_insert(at);
        out.sent = Some(rec.clone());
    }
    if rec.status >= status
        || matches!(rec.status, MessageStatus::Cancelled | MessageStatus::Failed)
    {
        put(txn, &rec)?;
        return Ok(out);
    }
    rec.status = status;
    match status {
        MessageStatus::Delivered => {
            rec.delivered_at.get_or_insert(at);
        }
        MessageStatus::Read => {
            rec.delivered_at.get_or_insert(at);
            rec.read_at.get_or_insert(at);
        }
        _ => {}
    }
    put(txn, &rec)?;
    out.advanced = Some(rec);
    Ok(out)
}

/// The message an idempotency key already names, inside a write (so a check and the
/// [`enqueue`] after it see the same state).
pub fn by_idempotency_key(
    txn: &WriteTransaction,
    session: &str,
    key: &str,
) -> Result<Option<MessageRecord>> {
    let id = {
        let idem = txn.open_table(IDEM)?;
        idem.get((session, key))?.map(|v| v.value().to_string())
    };
    match id {
        Some(id) => get_w(txn, session, &id),
        None => Ok(None),
    }
}

/// Hold a queued message (the duplicate guard): it keeps its place in the queue but the
/// sender passes it by until it is released or cancelled.
pub fn hold(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    reason: &str,
) -> Result<MessageRecord> {
    let mut rec = must(txn, session, id)?;
    if rec.status == MessageStatus::Queued {
        rec.status = MessageStatus::Held;
        rec.reason = Some(reason.to_string());
        put(txn, &rec)?;
    }
    Ok(rec)
}

/// Outcome of [`release`].
#[derive(Debug, Clone, PartialEq)]
pub enum Release {
    Released(MessageRecord),
    /// The message is not held.
    NotHeld(MessageRecord),
    NotFound,
}

/// Let a held message go: it is queued again, in its original place.
pub fn release(txn: &WriteTransaction, session: &str, id: &str) -> Result<Release> {
    let Some(mut rec) = get_w(txn, session, id)? else {
        return Ok(Release::NotFound);
    };
    if rec.status != MessageStatus::Held {
        return Ok(Release::NotHeld(rec));
    }
    rec.status = MessageStatus::Queued;
    rec.reason = None;
    put(txn, &rec)?;
    Ok(Release::Released(rec))
}

/// The messages waiting in the session's queue, in order (held ones included), at most
/// `limit` of them.
pub fn pending(txn: &ReadTransaction, session: &str, limit: usize) -> Result<Vec<MessageRecord>> {
    let q = txn.open_table(QUEUE)?;
    let msgs = txn.open_table(MSG)?;
    let mut out = Vec::new();
    for row in q.range((session, 0u64)..=(session, u64::MAX))? {
        if out.len() >= limit {
            break;
        }
        let (_, id) = row?;
        if let Some(v) = msgs.get((session, id.value()))? {
            out.push(decode(v.value())?);
        }
    }
    Ok(out)
}

/// The held messages of the session, in queue order, at most `limit` of them.
pub fn held(txn: &ReadTransaction, session: &str, limit: usize) -> Result<Vec<MessageRecord>> {
    let q = txn.open_table(QUEUE)?;
    let msgs = txn.open_table(MSG)?;
    let mut out = Vec::new();
    for row in q.range((session, 0u64)..=(session, u64::MAX))? {
        if out.len() >= limit {
            break;
        }
        let (_, id) = row?;
        if let Some(v) = msgs.get((session, id.value()))? {
            let rec = decode(v.value())?;
            if rec.status == MessageStatus::Held {
                out.push(rec);
            }
        }
    }
    Ok(out)
}

/// Remove every message row of a session.
pub(crate) fn delete_session(txn: &WriteTransaction, session: &str) -> Result<()> {
    let end = format!("{session}\0");
    fn clear<V: redb::Value + 'static>(
        txn: &WriteTransaction,
        def: TableDefinition<(&str, &str), V>,
        session: &str,
        end: &str,
    ) -> Result<()> {
        let mut t = txn.open_table(def)?;
        t.retain_in((session, "")..(end, ""), |_, _| false)?;
        Ok(())
    }
    clear(txn, MSG, session, &end)?;
    clear(txn, IDEM, session, &end)?;
    clear(txn, WA, session, &end)?;
    clear(txn, BLOB, session, &end)?;
    txn.open_table(QUEUE)?
        .retain_in((session, 0u64)..=(session, u64::MAX), |_, _| false)?;
    txn.open_table(SEQ)?.remove(session)?;
    txn.open_table(DEPTH)?.remove(session)?;
    Ok(())
}

/// The fields of a [`MessageRecord`] the retention needs (the content is not decoded).
#[derive(Deserialize)]
struct Finished {
    status: MessageStatus,
    seq: u64,
    created_at: i64,
    #[serde(default)]
    wa_id: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// Remove what the retention lets go, at most `limit` messages in this transaction:
/// finished messages (out of the queue: sent, delivered, read, failed, cancelled) created
/// before `older_than`, then the oldest finished ones while more than `max` remain, each
/// with its `msg_wa`, `msg_idem` and `msg_blob` rows. A queued, held or sending message is
/// never removed, whatever its age. Returns how many were removed; call again while that is
/// `limit`.
pub fn prune(txn: &WriteTransaction, older_than: i64, max: u64, limit: usize) -> Result<u64> {
    let mut finished: Vec<(i64, String, String, Finished)> = Vec::new();
    {
        let msgs = txn.open_table(MSG)?;
        let queue = txn.open_table(QUEUE)?;
        for row in msgs.iter()? {
            let (k, v) = row?;
            let rec: Finished = serde_json::from_slice(v.value()).map_err(corrupt)?;
            let (session, id) = k.value();
            if rec.status.is_pending() || queue.get((session, rec.seq))?.is_some() {
                continue;
            }
            finished.push((rec.created_at, session.to_string(), id.to_string(), rec));
        }
    }
    // Oldest first; ids (ULIDs) break ties in acceptance order.
    finished.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut excess = (finished.len() as u64).saturating_sub(max);
    let mut removed = 0u64;
    for (created_at, session, id, rec) in finished {
        if removed as usize >= limit || (created_at >= older_than && excess == 0) {
            break;
        }
        excess = excess.saturating_sub(1);
        let (s, i) = (session.as_str(), id.as_str());
        txn.open_table(MSG)?.remove((s, i))?;
        txn.open_table(BLOB)?.remove((s, i))?;
        if let Some(wa) = &rec.wa_id {
            let mut t = txn.open_table(WA)?;
            // Only the index row that still names this message.
            if t.get((s, wa.as_str()))?.is_some_and(|v| v.value() == i) {
                t.remove((s, wa.as_str()))?;
            }
        }
        if let Some(key) = &rec.idempotency_key {
            let mut t = txn.open_table(IDEM)?;
            if t.get((s, key.as_str()))?.is_some_and(|v| v.value() == i) {
                t.remove((s, key.as_str()))?;
            }
        }
        removed += 1;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("q.redb"), 1 << 20).unwrap();
        (dir, s)
    }

    fn msg(text: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            kind: "text".into(),
            to: "15550001111@s.whatsapp.net".into(),
            content: serde_json::json!({ "text": text }),
            blob: None,
            idempotency_key: key.map(str::to_string),
            now_ms: 1,
            to_phone: None,
            to_lid: None,
        }
    }

    #[test]
    fn order_per_session_and_idempotency() {
        let (_d, s) = store();
        let a = s
            .write_blocking(|t| enqueue(t, "a", &msg("1", Some("k1"))))
            .unwrap();
        let b = s
            .write_blocking(|t| enqueue(t, "a", &msg("2", None)))
            .unwrap();
        s.write_blocking(|t| enqueue(t, "b", &msg("x", Some("k1"))))
            .unwrap();
        let again = s
            .write_blocking(|t| enqueue(t, "a", &msg("other", Some("k1"))))
            .unwrap();
        assert!(again.replayed);
        assert_eq!(again.record.id, a.record.id);
        assert!(a.record.id.starts_with("msg_"));
        assert_eq!(s.read_blocking(|t| depth(t, "a")).unwrap(), 2);
        assert_eq!(s.read_blocking(|t| depth(t, "b")).unwrap(), 1);
        let first = s.read_blocking(|t| next(t, "a")).unwrap().unwrap();
        assert_eq!(first.id, a.record.id);
        s.write_blocking(|t| mark_sending(t, "a", &first.id, "WA1"))
            .unwrap();
        // Interrupted mid-send: still first, with its WhatsApp id kept.
        let again = s.read_blocking(|t| next(t, "a")).unwrap().unwrap();
        assert_eq!(
            (again.id.as_str(), again.wa_id.as_deref()),
            (first.id.as_str(), Some("WA1"))
        );
        let rec = s
            .write_blocking(|t| mark_sending(t, "a", &first.id, "WA-other"))
            .unwrap()
            .unwrap();
        assert_eq!(rec.wa_id.as_deref(), Some("WA1"));
        assert_eq!(rec.attempts, 2);
        s.write_blocking(|t| mark_sent(t, "a", &first.id, 5))
            .unwrap();
        let second = s.read_blocking(|t| next(t, "a")).unwrap().unwrap();
        assert_eq!(second.id, b.record.id);
    }

    #[test]
    fn receipts_only_move_forward_and_cancel_only_before_sending() {
        let (_d, s) = store();
        let a = s
            .write_blocking(|t| enqueue(t, "a", &msg("1", None)))
            .unwrap()
            .record;
        let b = s
            .write_blocking(|t| enqueue(t, "a", &msg("2", None)))
            .unwrap()
            .record;
        s.write_blocking(|t| mark_sending(t, "a", &a.id, "WA1"))
            .unwrap();
        assert!(matches!(
            s.write_blocking(|t| cancel(t, "a", &a.id, 2)).unwrap(),
            Cancel::TooLate(_)
        ));
        assert!(matches!(
            s.write_blocking(|t| cancel(t, "a", &b.id, 2)).unwrap(),
            Cancel::Cancelled(_)
        ));
        // The worker read it before the cancel: it is still not marked sending.
        assert_eq!(
            s.write_blocking(|t| mark_sending(t, "a", &b.id, "WA2"))
                .unwrap(),
            None
        );
        let b_now = s.read_blocking(|t| get(t, "a", &b.id)).unwrap().unwrap();
        assert_eq!(
            (b_now.status, b_now.wa_id),
            (MessageStatus::Cancelled, None)
        );
        assert_eq!(
            s.write_blocking(|t| cancel(t, "a", "msg_nope", 2)).unwrap(),
            Cancel::NotFound
        );
        s.write_blocking(|t| mark_sent(t, "a", &a.id, 3)).unwrap();
        let r = s
            .write_blocking(|t| apply_receipt(t, "a", "WA1", MessageStatus::Read, 9))
            .unwrap()
            .advanced
            .unwrap();
        assert_eq!(r.status, MessageStatus::Read);
        assert_eq!((r.delivered_at, r.read_at), (Some(9), Some(9)));
        assert!(
            s.write_blocking(|t| apply_receipt(t, "a", "WA1", MessageStatus::Delivered, 10))
                .unwrap()
                == Receipted::default()
        );
        assert_eq!(s.read_blocking(|t| depth(t, "a")).unwrap(), 0);
        let found = s
            .read_blocking(|t| by_wa_id(t, "a", "WA1"))
            .unwrap()
            .unwrap();
        assert_eq!(found.id, a.id);
    }

    /// A crash after the send and before `mark_sent`: the delivery receipt that arrives
    /// after the restart is the first record of the send. It reports the message sent (so
    /// `message.sent` is not lost) and the sender's own `mark_sent` later reports nothing.
    #[test]
    fn a_receipt_for_an_interrupted_send_reports_it_sent_once() {
        let (_d, s) = store();
        let a = s
            .write_blocking(|t| enqueue(t, "a", &msg("1", None)))
            .unwrap()
            .record;
        s.write_blocking(|t| mark_sending(t, "a", &a.id, "WA1"))
            .unwrap();
        let r = s
            .write_blocking(|t| apply_receipt(t, "a", "WA1", MessageStatus::Delivered, 7))
            .unwrap();
        let sent = r.sent.expect("the receipt reports the send");
        assert_eq!((sent.status, sent.sent_at), (MessageStatus::Sent, Some(7)));
        let advanced = r.advanced.unwrap();
        assert_eq!(advanced.status, MessageStatus::Delivered);
        assert_eq!(s.read_blocking(|t| depth(t, "a")).unwrap(), 0);
        assert!(s.read_blocking(|t| next(t, "a")).unwrap().is_none());
        // The resend that was under way ends: nothing more to record.
        assert_eq!(
            s.write_blocking(|t| mark_sent(t, "a", &a.id, 8)).unwrap(),
            None
        );
        let now = s.read_blocking(|t| get(t, "a", &a.id)).unwrap().unwrap();
        assert_eq!(now.status, MessageStatus::Delivered);
        assert_eq!(now.sent_at, Some(7));
    }

    #[test]
    fn held_messages_keep_their_place_until_released() {
        let (_d, s) = store();
        let a = s
            .write_blocking(|t| {
                let r = enqueue(t, "a", &msg("1", None))?.record;
                hold(t, "a", &r.id, "duplicate content")
            })
            .unwrap();
        let b = s
            .write_blocking(|t| enqueue(t, "a", &msg("2", None)))
            .unwrap()
            .record;
        assert_eq!(a.status, MessageStatus::Held);
        assert_eq!(s.read_blocking(|t| depth(t, "a")).unwrap(), 2);
        assert_eq!(s.read_blocking(|t| next(t, "a")).unwrap().unwrap().id, b.id);
        let held_now = s.read_blocking(|t| held(t, "a", 10)).unwrap();
        assert_eq!(held_now.len(), 1);
        assert_eq!(held_now[0].reason.as_deref(), Some("duplicate content"));
        assert!(matches!(
            s.write_blocking(|t| release(t, "a", &b.id)).unwrap(),
            Release::NotHeld(_)
        ));
        assert!(matches!(
            s.write_blocking(|t| release(t, "a", &a.id)).unwrap(),
            Release::Released(_)
        ));
        // Released, it is first again: its original place.
        assert_eq!(s.read_blocking(|t| next(t, "a")).unwrap().unwrap().id, a.id);
        let all = s.read_blocking(|t| pending(t, "a", 10)).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            [a.id.as_str(), b.id.as_str()]
        );
    }

    #[test]
    fn media_is_kept_until_sent_and_sessions_are_separate() {
        let (_d, s) = store();
        let mut m = msg("pic", None);
        m.blob = Some(vec![1, 2, 3]);
        let a = s.write_blocking(|t| enqueue(t, "a", &m)).unwrap().record;
        s.write_blocking(|t| enqueue(t, "ab", &m)).unwrap();
        assert_eq!(
            s.read_blocking(|t| blob(t, "a", &a.id)).unwrap(),
            Some(vec![1, 2, 3])
        );
        s.write_blocking(|t| mark_failed(t, "a", &a.id, "no such user", 4))
            .unwrap();
        assert_eq!(s.read_blocking(|t| blob(t, "a", &a.id)).unwrap(), None);
        s.write_blocking(|t| delete_session(t, "a")).unwrap();
        assert!(s.read_blocking(|t| get(t, "a", &a.id)).unwrap().is_none());
        assert_eq!(s.read_blocking(|t| depth(t, "ab")).unwrap(), 1);
    }

    fn at(text: &str, key: Option<&str>, now_ms: i64) -> NewMessage {
        NewMessage {
            now_ms,
            ..msg(text, key)
        }
    }

    fn count<V: redb::Value + 'static>(
        s: &Store,
        table: TableDefinition<(&'static str, &'static str), V>,
    ) -> u64 {
        use redb::ReadableTableMetadata;
        s.read_blocking(|t| Ok(t.open_table(table)?.len()?))
            .unwrap()
    }

    #[test]
    fn retention_removes_finished_old_messages_with_their_index_rows_never_pending_ones() {
        let (_d, s) = store();
        // Finished, old: delivered (with media once), failed, cancelled.
        let delivered = s
            .write_blocking(|t| {
                let mut m = at("d", Some("kd"), 100);
                m.blob = Some(vec![9; 4]);
                let r = enqueue(t, "a", &m)?.record;
                mark_sending(t, "a", &r.id, "WA_D")?;
                mark_sent(t, "a", &r.id, 101)?;
                Ok(apply_receipt(t, "a", "WA_D", MessageStatus::Delivered, 102)?.advanced)
            })
            .unwrap()
            .unwrap();
        let failed = s
            .write_blocking(|t| {
                let r = enqueue(t, "b", &at("f", Some("kf"), 110))?.record;
                mark_failed(t, "b", &r.id, "no such user", 111)
            })
            .unwrap();
        let cancelled = s
            .write_blocking(|t| {
                let r = enqueue(t, "a", &at("c", None, 120))?.record;
                match cancel(t, "a", &r.id, 121)? {
                    Cancel::Cancelled(r) => Ok(r),
                    other => panic!("{other:?}"),
                }
            })
            .unwrap();
        // Pending, just as old: queued (with media), held, sending.
        let queued = s
            .write_blocking(|t| {
                let mut m = at("q", Some("kq"), 50);
                m.blob = Some(vec![1, 2]);
                enqueue(t, "a", &m)
            })
            .unwrap()
            .record;
        let held_msg = s
            .write_blocking(|t| {
                let r = enqueue(t, "a", &at("h", None, 50))?.record;
                hold(t, "a", &r.id, "duplicate content")
            })
            .unwrap();
        let sending = s
            .write_blocking(|t| {
                let r = enqueue(t, "b", &at("s", Some("ks"), 50))?.record;
                mark_sending(t, "b", &r.id, "WA_S")
            })
            .unwrap()
            .unwrap();
        // Finished but recent.
        let recent = s
            .write_blocking(|t| {
                let r = enqueue(t, "a", &at("r", Some("kr"), 10_000))?.record;
                mark_sending(t, "a", &r.id, "WA_R")?;
                mark_sent(t, "a", &r.id, 10_001)
            })
            .unwrap()
            .expect("the first record of the send");

        let gone = s.write_blocking(|t| prune(t, 1_000, 100_000, 500)).unwrap();
        assert_eq!(gone, 3);
        for r in [&delivered, &failed, &cancelled] {
            assert!(
                s.read_blocking(|t| get(t, &r.session, &r.id))
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            s.read_blocking(|t| by_wa_id(t, "a", "WA_D"))
                .unwrap()
                .is_none()
        );
        assert!(
            s.write_blocking(|t| by_idempotency_key(t, "a", "kd"))
                .unwrap()
                .is_none()
        );
        // A receipt for a removed message finds nothing and changes nothing.
        assert_eq!(
            s.write_blocking(|t| apply_receipt(t, "a", "WA_D", MessageStatus::Read, 2_000))
                .unwrap(),
            Receipted::default()
        );
        // What is left: 4 messages; wa rows of sending and recent; idem rows of q, s, r;
        // the queued message's media.
        assert_eq!(count(&s, MSG), 4);
        assert_eq!(count(&s, WA), 2);
        assert_eq!(count(&s, IDEM), 3);
        assert_eq!(count(&s, BLOB), 1);
        for r in [&queued, &held_msg, &sending, &recent] {
            let got = s
                .read_blocking(|t| get(t, &r.session, &r.id))
                .unwrap()
                .unwrap();
            assert_eq!(got.status, r.status);
        }
        assert_eq!(
            s.read_blocking(|t| blob(t, "a", &queued.id)).unwrap(),
            Some(vec![1, 2])
        );
        assert_eq!(s.read_blocking(|t| depth(t, "a")).unwrap(), 2);
        assert_eq!(s.read_blocking(|t| depth(t, "b")).unwrap(), 1);
        assert_eq!(
            s.read_blocking(|t| next(t, "b")).unwrap().unwrap().id,
            sending.id
        );

        // Pending messages stay whatever their age and the count bound.
        let gone = s.write_blocking(|t| prune(t, i64::MAX, 0, 500)).unwrap();
        assert_eq!(gone, 1, "only the finished recent one");
        assert_eq!(count(&s, MSG), 3);
        // A second run finds nothing.
        assert_eq!(s.write_blocking(|t| prune(t, i64::MAX, 0, 500)).unwrap(), 0);
        // An idempotency key of a removed message is free again.
        let again = s
            .write_blocking(|t| enqueue(t, "a", &at("d2", Some("kd"), 3_000)))
            .unwrap();
        assert!(!again.replayed);
    }

    #[test]
    fn retention_count_bound_removes_oldest_first_in_batches() {
        let (_d, s) = store();
        let mut ids = Vec::new();
        // Created in an order that is not the id order: times 10, 9, ..., 1 across two sessions.
        for i in 0..10i64 {
            let session = if i % 2 == 0 { "a" } else { "b" };
            let r = s
                .write_blocking(|t| {
                    let r = enqueue(t, session, &at(&i.to_string(), None, 10 - i))?.record;
                    mark_failed(t, session, &r.id, "x", 20)
                })
                .unwrap();
            ids.push(r);
        }
        // Nothing is old (older_than 0); keep 4: the 6 oldest go, at most 4 per batch.
        assert_eq!(s.write_blocking(|t| prune(t, 0, 4, 4)).unwrap(), 4);
        assert_eq!(s.write_blocking(|t| prune(t, 0, 4, 4)).unwrap(), 2);
        assert_eq!(s.write_blocking(|t| prune(t, 0, 4, 4)).unwrap(), 0);
        let left: Vec<bool> = ids
            .iter()
            .map(|r| {
                s.read_blocking(|t| get(t, &r.session, &r.id))
                    .unwrap()
                    .is_some()
            })
            .collect();
        // ids[i] was created at 10 - i: the newest four are the first four.
        assert_eq!(
            left,
            [
                true, true, true, true, false, false, false, false, false, false
            ]
        );
    }

    #[test]
    fn retention_works_on_the_reopened_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.redb");
        let s = Store::open(&path, 1 << 20).unwrap();
        let r = s
            .write_blocking(|t| {
                let r = enqueue(t, "a", &at("x", Some("k"), 5))?.record;
                mark_failed(t, "a", &r.id, "x", 6)
            })
            .unwrap();
        s.close();
        drop(s);
        let s = Store::open(&path, 1 << 20).unwrap();
        assert_eq!(s.write_blocking(|t| prune(t, 100, 1_000, 10)).unwrap(), 1);
        s.close();
        drop(s);
        let s = Store::open(&path, 1 << 20).unwrap();
        assert!(s.read_blocking(|t| get(t, "a", &r.id)).unwrap().is_none());
        assert_eq!(count(&s, IDEM), 0);
    }
}
