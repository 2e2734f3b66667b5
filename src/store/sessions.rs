//! The session registry: which sessions exist, whether they should run, and the last state
//! each one reached (so a restart shows something true before the client reconnects).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::events::SessionState;

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(SESSIONS)?;
    Ok(())
}

/// One session as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord {
    pub id: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Whether the session should run; `stop` clears it, `start` sets it. Boot starts the
    /// sessions that have it.
    pub enabled: bool,
    /// The last state the engine recorded.
    pub state: SessionState,
    /// The account's phone-number JID once paired.
    #[serde(default)]
    pub phone: Option<String>,
    /// The account's LID once paired.
    #[serde(default)]
    pub lid: Option<String>,
    /// When the session last paired with a phone (unix ms): the warm-up curve counts its
    /// days from here. `None` for sessions paired before wagate recorded it (no warm-up).
    #[serde(default)]
    pub paired_at: Option<i64>,
    /// The account's push name as the session last knew it (set through the API or learned
    /// from WhatsApp): the client starts with it, not with the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_name: Option<String>,
}

impl SessionRecord {
    pub fn new(id: &str, now_ms: i64) -> Self {
        SessionRecord {
            id: id.to_string(),
            created_at: now_ms,
            enabled: true,
            state: SessionState::Stopped,
            phone: None,
            lid: None,
            paired_at: None,
            push_name: None,
        }
    }
}

fn decode(bytes: &[u8]) -> Result<SessionRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: "sessions",
        detail: e.to_string(),
    })
}

fn encode(rec: &SessionRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| StoreError::Invalid(e.to_string()))
}

pub fn list(txn: &ReadTransaction) -> Result<Vec<SessionRecord>> {
    let table = txn.open_table(SESSIONS)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<SessionRecord>> {
    let table = txn.open_table(SESSIONS)?;
    table.get(id)?.map(|v| decode(v.value())).transpose()
}

pub fn get_in_write(txn: &WriteTransaction, id: &str) -> Result<Option<SessionRecord>> {
    let table = txn.open_table(SESSIONS)?;
    table.get(id)?.map(|v| decode(v.value())).transpose()
}

/// Insert a new record; false (and nothing written) if the id is taken.
pub fn insert(txn: &WriteTransaction, rec: &SessionRecord) -> Result<bool> {
    let mut table = txn.open_table(SESSIONS)?;
    if table.get(rec.id.as_str())?.is_some() {
        return Ok(false);
    }
    table.insert(rec.id.as_str(), encode(rec)?.as_slice())?;
    Ok(true)
}

/// Replace an existing record.
pub fn put(txn: &WriteTransaction, rec: &SessionRecord) -> Result<()> {
    let mut table = txn.open_table(SESSIONS)?;
    table.insert(rec.id.as_str(), encode(rec)?.as_slice())?;
    Ok(())
}

/// Record that the session paired at `at` (does nothing for an unknown session).
pub fn set_paired_at(txn: &WriteTransaction, id: &str, at: i64) -> Result<()> {
    if let Some(mut rec) = get_in_write(txn, id)? {
        rec.paired_at = Some(at);
        put(txn, &rec)?;
    }
    Ok(())
}

/// Record the account's push name (`None`: forget it, the account is unlinked).
pub fn set_push_name(txn: &WriteTransaction, id: &str, name: Option<&str>) -> Result<()> {
    if let Some(mut rec) = get_in_write(txn, id)?
        && rec.push_name.as_deref() != name
    {
        rec.push_name = name.map(str::to_string);
        put(txn, &rec)?;
    }
    Ok(())
}

/// Remove the record and every key the session's whatsapp-rust backend holds.
pub fn delete(txn: &WriteTransaction, id: &str) -> Result<bool> {
    let existed = {
        let mut table = txn.open_table(SESSIONS)?;
        table.remove(id)?.is_some()
    };
    super::wa_backend::delete_session_keys(txn, id)?;
    super::queue::delete_session(txn, id)?;
    super::inbound::delete_session(txn, id)?;
    super::pacing::delete_session(txn, id)?;
    super::contacts::delete_session(txn, id)?;
    super::calls::delete_session(txn, id)?;
    Ok(existed)
}
