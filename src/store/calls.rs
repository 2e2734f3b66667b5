//! Calls offered to a session's account: what `call.received` told, and what became of the
//! call (rejected, ended). `POST .../calls/{id}/reject` reads it.
//!
//! Layout:
//! - `call` (session, call id) -> [`CallRecord`] as JSON
//!
//! Records go with the messages' retention ([`prune`]).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::events::CallInfo;

const CALL: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("call");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(CALL)?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CallRecord {
    #[serde(flatten)]
    pub info: CallInfo,
    /// Who the offer stanza came from (the caller's device), which a rejection answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_at: Option<i64>,
    /// When the caller's side ended it (hung up, answered or declined on another device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
}

fn decode(bytes: &[u8]) -> Result<CallRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: "call",
        detail: e.to_string(),
    })
}

fn put(txn: &WriteTransaction, session: &str, rec: &CallRecord) -> Result<()> {
    let json = serde_json::to_vec(rec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    txn.open_table(CALL)?
        .insert((session, rec.info.call_id.as_str()), json.as_slice())?;
    Ok(())
}

/// Record an offered call. `false` when it is known already (an offer handed over twice).
pub fn offered(
    txn: &WriteTransaction,
    session: &str,
    info: &CallInfo,
    peer: Option<String>,
) -> Result<bool> {
    if get_w(txn, session, &info.call_id)?.is_some() {
        return Ok(false);
    }
    put(
        txn,
        session,
        &CallRecord {
            info: info.clone(),
            peer,
            ..Default::default()
        },
    )?;
    Ok(true)
}

pub fn get(txn: &ReadTransaction, session: &str, call_id: &str) -> Result<Option<CallRecord>> {
    let t = txn.open_table(CALL)?;
    t.get((session, call_id))?
        .map(|v| decode(v.value()))
        .transpose()
}

pub fn get_w(txn: &WriteTransaction, session: &str, call_id: &str) -> Result<Option<CallRecord>> {
    let t = txn.open_table(CALL)?;
    t.get((session, call_id))?
        .map(|v| decode(v.value()))
        .transpose()
}

/// Record a rejection (`by`: auto or api; `reply_id`: the text queued to the caller). The
/// record as it is now, or `None` for an unknown call.
pub fn rejected(
    txn: &WriteTransaction,
    session: &str,
    call_id: &str,
    by: &str,
    reply_id: Option<String>,
    at: i64,
) -> Result<Option<CallRecord>> {
    let Some(mut rec) = get_w(txn, session, call_id)? else {
        return Ok(None);
    };
    rec.rejected_at = Some(at);
    rec.info.rejected_by = Some(by.to_string());
    rec.info.reply_id = reply_id;
    put(txn, session, &rec)?;
    Ok(Some(rec))
}

/// Record that the call ended on the caller's side (or on another device).
pub fn ended(
    txn: &WriteTransaction,
    session: &str,
    call_id: &str,
    reason: Option<&str>,
    at: i64,
) -> Result<()> {
    if let Some(mut rec) = get_w(txn, session, call_id)?
        && rec.ended_at.is_none()
    {
        rec.ended_at = Some(at);
        rec.end_reason = reason.map(str::to_string);
        put(txn, session, &rec)?;
    }
    Ok(())
}

/// The session's calls, newest first, at most `limit`.
pub fn recent(txn: &ReadTransaction, session: &str, limit: usize) -> Result<Vec<CallRecord>> {
    let t = txn.open_table(CALL)?;
    let mut all = Vec::new();
    for row in t.range((session, "")..=(session, "\u{10FFFF}"))? {
        all.push(decode(row?.1.value())?);
    }
    all.sort_by_key(|r| std::cmp::Reverse(r.info.offered_at));
    all.truncate(limit);
    Ok(all)
}

/// Remove calls offered before `older_than`; how many went.
pub fn prune(txn: &WriteTransaction, older_than: i64) -> Result<u64> {
    let mut t = txn.open_table(CALL)?;
    let mut removed = 0u64;
    t.retain(|_, v| {
        let keep = decode(v).map_or(true, |r| r.info.offered_at >= older_than);
        removed += u64::from(!keep);
        keep
    })?;
    Ok(removed)
}

/// Remove every call of a session (the session is deleted).
pub fn delete_session(txn: &WriteTransaction, session: &str) -> Result<()> {
    txn.open_table(CALL)?
        .retain_in((session, "")..=(session, "\u{10FFFF}"), |_, _| false)?;
    Ok(())
}
