//! Inbound messages: what the API needs later of a received message (download its media,
//! mark it read, find a poll a vote names). Written in the same transaction as the
//! message's `message.received` outbox row.
//!
//! Layout:
//! - `in_msg`    (session, msg id) -> [`InboundRecord`] as JSON
//! - `in_wa`     (session, chat, WhatsApp id) -> msg id: the message a reference names
//! - `in_unread` (session, chat, msg id) -> (): inbound messages not marked read yet
//!
//! Records stay until the retention removes them ([`prune`]).

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Result, StoreError};

pub(super) const MSG: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("in_msg");
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
    /// The text (or caption) of a message whose protobuf is not kept: what a reply quoting
    /// it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// When its sender's newest edit of it arrived, and that edit's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_text: Option<String>,
    /// When its sender deleted it for everyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

pub(super) fn decode(bytes: &[u8]) -> Result<InboundRecord> {
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

/// Record on a received message that its sender edited it (`Some(text)`) or deleted it for
/// everyone (`None`), at `at` (the edit's or revoke's send time). An older edit arriving
/// after a newer one does not replace it. Returns whether the message was there.
pub fn mark_changed(
    txn: &WriteTransaction,
    session: &str,
    id: &str,
    edit: Option<&str>,
    at: i64,
) -> Result<bool> {
    let mut t = txn.open_table(MSG)?;
    let Some(mut rec) = t
        .get((session, id))?
        .map(|v| decode(v.value()))
        .transpose()?
    else {
        return Ok(false);
    };
    match edit {
        Some(text) if rec.edited_at.is_none_or(|prev| prev <= at) => {
            rec.edited_at = Some(at);
            rec.edited_text = Some(text.to_string());
        }
        Some(_) => {}
        None => rec.revoked_at = Some(at),
    }
    let json = serde_json::to_vec(&rec).map_err(|e| StoreError::Invalid(e.to_string()))?;
    t.insert((session, id), json.as_slice())?;
    Ok(true)
}

/// [`get`] inside a write transaction.
pub fn get_w(txn: &WriteTransaction, session: &str, id: &str) -> Result<Option<InboundRecord>> {
    record(&txn.open_table(MSG)?, session, id)
}

pub fn get(txn: &ReadTransaction, session: &str, id: &str) -> Result<Option<InboundRecord>> {
    record(&txn.open_table(MSG)?, session, id)
}

fn record(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    session: &str,
    id: &str,
) -> Result<Option<InboundRecord>> {
    t.get((session, id))?.map(|v| decode(v.value())).transpose()
}

/// The message `(session, chat, wa_id)` names in `in_wa` / `in_msg`.
fn named(
    wa: &impl ReadableTable<(&'static str, &'static str, &'static str), &'static str>,
    msgs: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    (session, chat, wa_id): (&str, &str, &str),
) -> Result<Option<InboundRecord>> {
    match wa.get((session, chat, wa_id))? {
        Some(id) => record(msgs, session, id.value()),
        None => Ok(None),
    }
}

/// The message a chat's WhatsApp id names.
pub fn by_wa_id(
    txn: &ReadTransaction,
    session: &str,
    chat: &str,
    wa_id: &str,
) -> Result<Option<InboundRecord>> {
    named(
        &txn.open_table(WA)?,
        &txn.open_table(MSG)?,
        (session, chat, wa_id),
    )
}

/// [`by_wa_id`] inside a write transaction (a message recorded earlier in it counts).
pub fn by_wa_id_w(
    txn: &WriteTransaction,
    session: &str,
    chat: &str,
    wa_id: &str,
) -> Result<Option<InboundRecord>> {
    named(
        &txn.open_table(WA)?,
        &txn.open_table(MSG)?,
        (session, chat, wa_id),
    )
}

/// Whether a message of this chat with this WhatsApp id was received and recorded.
pub fn knows_wa_id(txn: &ReadTransaction, session: &str, chat: &str, wa_id: &str) -> Result<bool> {
    Ok(txn.open_table(WA)?.get((session, chat, wa_id))?.is_some())
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

/// The fields of an [`InboundRecord`] the retention needs.
#[derive(Deserialize)]
struct Kept {
    chat: String,
    wa_id: String,
    sent_at: i64,
}

/// Remove what the retention lets go, at most `limit` messages in this transaction: received
/// messages sent before `older_than`, then the oldest while more than `max` remain, each with
/// its `in_wa` and `in_unread` rows. Returns how many were removed; call again while that is
/// `limit`.
pub fn prune(txn: &WriteTransaction, older_than: i64, max: u64, limit: usize) -> Result<u64> {
    let mut all: Vec<(i64, String, String, Kept)> = Vec::new();
    {
        let t = txn.open_table(MSG)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let rec: Kept = serde_json::from_slice(v.value()).map_err(|e| StoreError::Corrupt {
                table: "in_msg",
                detail: e.to_string(),
            })?;
            let (session, id) = k.value();
            all.push((rec.sent_at, session.to_string(), id.to_string(), rec));
        }
    }
    all.sort_by(|a, b| (a.0, &a.2).cmp(&(b.0, &b.2)));
    let mut excess = (all.len() as u64).saturating_sub(max);
    let mut removed = 0u64;
    for (sent_at, session, id, rec) in all {
        if removed as usize >= limit || (sent_at >= older_than && excess == 0) {
            break;
        }
        excess = excess.saturating_sub(1);
        let (s, i, c) = (session.as_str(), id.as_str(), rec.chat.as_str());
        txn.open_table(MSG)?.remove((s, i))?;
        let mut wa = txn.open_table(WA)?;
        if wa
            .get((s, c, rec.wa_id.as_str()))?
            .is_some_and(|v| v.value() == i)
        {
            wa.remove((s, c, rec.wa_id.as_str()))?;
        }
        drop(wa);
        txn.open_table(UNREAD)?.remove((s, c, i))?;
        removed += 1;
    }
    Ok(removed)
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

    #[test]
    fn retention_removes_old_then_oldest_received_messages_with_their_index_rows() {
        use redb::ReadableTableMetadata;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        let rec = |i: i64, chat: &str| InboundRecord {
            id: format!("msg_{i:02}"),
            chat: chat.into(),
            sender: chat.into(),
            wa_id: format!("W{i}"),
            kind: "text".into(),
            sent_at: i * 100,
            ..Default::default()
        };
        // 10 messages in two sessions and two chats, sent at 100..=1000.
        store
            .write_blocking(|t| {
                for i in 1..=10 {
                    let chat = if i % 3 == 0 {
                        "3@s.whatsapp.net"
                    } else {
                        "2@s.whatsapp.net"
                    };
                    put(t, if i % 2 == 0 { "a" } else { "b" }, &rec(i, chat))?;
                }
                Ok(())
            })
            .unwrap();
        let sizes = |s: &crate::store::Store| {
            s.read_blocking(|t| {
                Ok((
                    t.open_table(MSG)?.len()?,
                    t.open_table(WA)?.len()?,
                    t.open_table(UNREAD)?.len()?,
                ))
            })
            .unwrap()
        };
        assert_eq!(sizes(&store), (10, 10, 10));
        // Sent before 350: messages 1, 2, 3.
        assert_eq!(
            store.write_blocking(|t| prune(t, 350, 1_000, 500)).unwrap(),
            3
        );
        assert_eq!(sizes(&store), (7, 7, 7));
        for (session, i) in [("b", 1), ("a", 2), ("b", 3)] {
            let r = rec(i, "x");
            assert!(
                store
                    .read_blocking(|t| get(t, session, &r.id))
                    .unwrap()
                    .is_none()
            );
        }
        assert!(
            store
                .read_blocking(|t| by_wa_id(t, "b", "3@s.whatsapp.net", "W3"))
                .unwrap()
                .is_none()
        );
        // Keep 4: the oldest three of the rest (4, 5, 6) go, two per batch.
        assert_eq!(store.write_blocking(|t| prune(t, 0, 4, 2)).unwrap(), 2);
        assert_eq!(store.write_blocking(|t| prune(t, 0, 4, 2)).unwrap(), 1);
        assert_eq!(store.write_blocking(|t| prune(t, 0, 4, 2)).unwrap(), 0);
        assert_eq!(sizes(&store), (4, 4, 4));
        let left = store
            .read_blocking(|t| {
                let mut v = Vec::new();
                for row in t.open_table(MSG)?.iter()? {
                    v.push(row?.0.value().1.to_string());
                }
                Ok(v)
            })
            .unwrap();
        let mut left = left;
        left.sort();
        assert_eq!(left, ["msg_07", "msg_08", "msg_09", "msg_10"]);
        let unread_now = store
            .read_blocking(|t| unread(t, "b", "3@s.whatsapp.net"))
            .unwrap();
        assert_eq!(
            unread_now.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["msg_09"]
        );
    }
}
