//! API keys: one row per key, by id. Only the SHA-256 of a key is kept (see [`crate::auth`]);
//! revoked keys stay, marked, so listings show them.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};
use crate::auth::Scope;

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(KEYS)?;
    Ok(())
}

/// One API key as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyRecord {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub scopes: Vec<Scope>,
    /// The sessions the key may use; `None`: all.
    #[serde(default)]
    pub sessions: Option<Vec<String>>,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    /// Unix milliseconds.
    pub created_at: i64,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

fn decode(bytes: &[u8]) -> Result<KeyRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: "api_keys",
        detail: e.to_string(),
    })
}

fn encode(rec: &KeyRecord) -> Result<Vec<u8>> {
    serde_json::to_vec(rec).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Whether any key (revoked or not) exists: setup is open only while none does.
pub fn any(txn: &ReadTransaction) -> Result<bool> {
    Ok(!txn.open_table(KEYS)?.is_empty()?)
}

pub fn list(txn: &ReadTransaction) -> Result<Vec<KeyRecord>> {
    let table = txn.open_table(KEYS)?;
    let mut out = Vec::new();
    for row in table.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<KeyRecord>> {
    let table = txn.open_table(KEYS)?;
    table.get(id)?.map(|v| decode(v.value())).transpose()
}

/// Insert a new key; false (nothing written) if the id is taken.
pub fn insert(txn: &WriteTransaction, rec: &KeyRecord) -> Result<bool> {
    let mut table = txn.open_table(KEYS)?;
    if table.get(rec.id.as_str())?.is_some() {
        return Ok(false);
    }
    table.insert(rec.id.as_str(), encode(rec)?.as_slice())?;
    Ok(true)
}

/// Insert the first key; false (nothing written) if any key exists already.
pub fn insert_first(txn: &WriteTransaction, rec: &KeyRecord) -> Result<bool> {
    let mut table = txn.open_table(KEYS)?;
    if !table.is_empty()? {
        return Ok(false);
    }
    table.insert(rec.id.as_str(), encode(rec)?.as_slice())?;
    Ok(true)
}

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    /// Revoked now (or already before: revoking is idempotent).
    Done(KeyRecord),
    NotFound,
    /// Refused: it is the last active admin key (the API keeps one so it stays manageable).
    LastAdmin,
}

/// Mark a key revoked at `now_ms`. With `keep_last_admin`, the last active admin key is kept.
pub fn revoke(
    txn: &WriteTransaction,
    id: &str,
    now_ms: i64,
    keep_last_admin: bool,
) -> Result<Revoked> {
    let mut table = txn.open_table(KEYS)?;
    let Some(mut rec) = table.get(id)?.map(|v| decode(v.value())).transpose()? else {
        return Ok(Revoked::NotFound);
    };
    if rec.revoked_at.is_some() {
        return Ok(Revoked::Done(rec));
    }
    if keep_last_admin && rec.scopes.contains(&Scope::Admin) {
        let mut other_admins = 0;
        for row in table.iter()? {
            let (k, v) = row?;
            if k.value() == id {
                continue;
            }
            let other = decode(v.value())?;
            if other.revoked_at.is_none() && other.scopes.contains(&Scope::Admin) {
                other_admins += 1;
            }
        }
        if other_admins == 0 {
            return Ok(Revoked::LastAdmin);
        }
    }
    rec.revoked_at = Some(now_ms);
    table.insert(id, encode(&rec)?.as_slice())?;
    Ok(Revoked::Done(rec))
}
