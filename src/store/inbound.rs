//! Inbound messages: what the API needs later of a received message (download its media,
//! mark it read, find a poll a vote names). Written in the same transaction as the
//! message's `message.received` outbox row.
//!
//! Layout:
//! - `in_msg`    (session, msg id) -> [`InboundRecord`] as JSON
//! - `in_wa`     (session, chat, WhatsApp id) -> msg id: the message a reference names
//! - `in_unread` (session, chat, msg id) -> (): inbound messages not marked read yet

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

const MSG: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("in_msg");
const WA: TableDefinition<(&str, &str, &str), &str> = TableDefinition::new("in_wa");
const UNREAD: TableDefinition<(&str, &str, &str), ()> = TableDefinition::new("in_unread");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(MSG)?;
    txn.open_table(WA)?;
    txn.open_table(UNREAD)?;
    Ok(())
}

/// One received message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct InboundRecord {
    /// wagate's id (`msg_...`).
    pub id: String,
    pub chat: String,
    /// The sender's JID as the stanza named it.
    pub sender: String,
    pub wa_id: String,
    /// The `kind` of `message.received`.
    pub kind: String,
    pub sent_at: i64,
    #[serde(default)]
    pub mimetype: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    /// The encoded protobuf of the message (media: what a download needs; polls: the
    /// options and the secret votes are encrypted with), base64.
    #[serde(default)]
    pub proto: Option<String>,
}

fn decode(bytes: &[u8]) -> Result<InboundRecord> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table: "in_msg",
        detail: e.to_string(),
    })
}

/// Store a received message (and count it unread). An id already there is left alone.
pub fn put(txn: &WriteTransaction, session: &str, rec: &InboundRecord) -> Result<()> {
    let mut t = txn.open_table(MSG)?;
    if t.get((session, rec.id.as_str()))?.is_some() {
        return Ok(());
    }
    let json = serde_json::to_vec(rec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    t.insert((session, rec.id.as_str()), json.as_slice())?;
    txn.open_table(WA)?.insert(
        (session, rec.chat.as_str(), rec.wa_id.as_str()),
        rec.id.as_str(),
    )?;
    txn.open_table(UNREAD)?
        .insert((session, rec.chat.as_str(), rec.id.as_str()), ())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, session: &str, id: &str) -> Result<Option<InboundRecord>> {
    let t = txn.open_table(MSG)?;
    t.get((session, id))?.map(|v| decode(v.value())).transpose()
}

/// The message a chat's WhatsApp id names.
pub fn by_wa_id(
    txn: &ReadTransaction,
    session: &str,
    chat: &str,
    wa_id: &str,
) -> Result<Option<InboundRecord>> {
    let id = match txn.open_table(WA)?.get((session, chat, wa_id))? {
        Some(v) => v.value().to_string(),
        None => return Ok(None),
    };
    get(txn, session, &id)
}

/// The chat's messages not marked read yet, oldest id first.
pub fn unread(txn: &ReadTransaction, session: &str, chat: &str) -> Result<Vec<InboundRecord>> {
    let t = txn.open_table(UNREAD)?;
    let mut ids = Vec::new();
    for row in t.range((session, chat, "")..)? {
        let (k, _) = row?;
        let (s, c, id) = k.value();
        if s != session || c != chat {
            break;
        }
        ids.push(id.to_string());
    }
    let mut out = Vec::new();
    for id in ids {
        if let Some(r) = get(txn, session, &id)? {
            out.push(r);
        }
    }
    Ok(out)
}

/// Mark messages of a chat read (no longer unread).
pub fn mark_read(txn: &WriteTransaction, session: &str, chat: &str, ids: &[String]) -> Result<()> {
    let mut t = txn.open_table(UNREAD)?;
    for id in ids {
        t.remove((session, chat, id.as_str()))?;
    }
    Ok(())
}

/// Remove every message of a session (the session is deleted).
pub fn delete_session(txn: &WriteTransaction, session: &str) -> Result<()> {
    let mut t = txn.open_table(MSG)?;
    let mut ids = Vec::new();
    for row in t.range((session, "")..)? {
        let (k, _) = row?;
        let (s, id) = k.value();
        if s != session {
            break;
        }
        ids.push(id.to_string());
    }
    for id in &ids {
        t.remove((session, id.as_str()))?;
    }
    remove_chat_keys(txn, WA, session)?;
    remove_chat_keys(txn, UNREAD, session)?;
    Ok(())
}

fn remove_chat_keys<V: redb::Value + 'static>(
    txn: &WriteTransaction,
    def: TableDefinition<(&'static str, &'static str, &'static str), V>,
    session: &str,
) -> Result<()> {
    let mut t = txn.open_table(def)?;
    let mut keys = Vec::new();
    for row in t.range((session, "", "")..)? {
        let (k, _) = row?;
        let (s, c, w) = k.value();
        if s != session {
            break;
        }
        keys.push((c.to_string(), w.to_string()));
    }
    for (c, w) in &keys {
        t.remove((session, c.as_str(), w.as_str()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_found_by_id_and_wa_id_and_counts_unread_until_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        let rec = InboundRecord {
            id: "msg_1".into(),
            chat: "1@s.whatsapp.net".into(),
            sender: "1@s.whatsapp.net".into(),
            wa_id: "W1".into(),
            kind: "image".into(),
            ..Default::default()
        };
        let r = rec.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(store.write(move |t| put(t, "s", &r))).unwrap();
        let got = rt
            .block_on(store.read(|t| {
                Ok((
                    get(t, "s", "msg_1")?,
                    by_wa_id(t, "s", "1@s.whatsapp.net", "W1")?,
                    get(t, "other", "msg_1")?,
                    unread(t, "s", "1@s.whatsapp.net")?.len(),
                ))
            }))
            .unwrap();
        assert_eq!(got.0.as_ref(), Some(&rec));
        assert_eq!(got.1.as_ref(), Some(&rec));
        assert_eq!(got.2, None);
        assert_eq!(got.3, 1);
        rt.block_on(store.write(|t| {
            mark_read(t, "s", "1@s.whatsapp.net", &["msg_1".to_string()])?;
            Ok(())
        }))
        .unwrap();
        let n = rt
            .block_on(store.read(|t| unread(t, "s", "1@s.whatsapp.net")))
            .unwrap();
        assert!(n.is_empty());
        rt.block_on(store.write(|t| delete_session(t, "s")))
            .unwrap();
        assert!(
            rt.block_on(store.read(|t| get(t, "s", "msg_1")))
                .unwrap()
                .is_none()
        );
    }
}
