//! A session's messages, sent and received, in one ordered history.
//!
//! Both kinds of records are keyed by (session, `msg_` + ULID), and a ULID starts with its
//! time: a sent message's id with the time it was accepted, a received one's with the time
//! its sender stamped it. So the id orders the history by time, and an id is a stable
//! cursor: a page continues after the last id of the one before, whatever was written or
//! removed meanwhile.
//!
//! A filter (`chat`) is applied while scanning; a page stops after [`SCAN_LIMIT`] rows per
//! table even when it is not full, and then says where to go on (`next`), so one request
//! never reads a whole large store.

use redb::{ReadTransaction, TableDefinition};

use super::Result;
use super::inbound::{self, InboundRecord};
use super::queue::{self, MessageRecord};

/// Rows one page reads at most from each table.
pub const SCAN_LIMIT: usize = 5_000;

/// Which messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Both directions when `None`.
    pub direction: Option<Direction>,
    /// Only this chat's messages (a sent message's `to`, phone or LID; a received one's
    /// chat).
    pub chat: Option<String>,
    /// Continue after this message id.
    pub after: Option<String>,
    /// Oldest first instead of newest first.
    pub oldest_first: bool,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Out(MessageRecord),
    In(InboundRecord),
}

impl Item {
    pub fn id(&self) -> &str {
        match self {
            Item::Out(r) => &r.id,
            Item::In(r) => &r.id,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub items: Vec<Item>,
    /// The cursor of the next page; `None` at the end of the history.
    pub next: Option<String>,
}

/// What one table's scan found: the matches (at most `limit`), and the last id scanned when
/// the table may hold more.
struct Scan {
    items: Vec<Item>,
    stopped_at: Option<String>,
}

fn scan(
    txn: &ReadTransaction,
    table: TableDefinition<(&str, &str), &[u8]>,
    session: &str,
    q: &Query,
    decode: impl Fn(&[u8]) -> Result<Option<Item>>,
) -> Result<Scan> {
    use std::ops::Bound::{Excluded, Included};
    let t = txn.open_table(table)?;
    // Every id of the session sorts after "" and before "\u{10FFFF}"; the cursor itself is
    // left out.
    let (first, last) = ((session, ""), (session, "\u{10FFFF}"));
    let range = match (&q.after, q.oldest_first) {
        (Some(a), true) => {
            t.range::<(&str, &str)>((Excluded((session, a.as_str())), Included(last)))?
        }
        (Some(a), false) => {
            t.range::<(&str, &str)>((Included(first), Excluded((session, a.as_str()))))?
        }
        (None, _) => t.range::<(&str, &str)>((Included(first), Included(last)))?,
    };
    let rows: Box<dyn Iterator<Item = _>> = if q.oldest_first {
        Box::new(range)
    } else {
        Box::new(range.rev())
    };
    let mut out = Scan {
        items: Vec::new(),
        stopped_at: None,
    };
    for (n, row) in rows.enumerate() {
        let (k, v) = row?;
        if let Some(item) = decode(v.value())? {
            out.items.push(item);
        }
        if out.items.len() >= q.limit || n + 1 >= SCAN_LIMIT {
            // Everything up to this row is considered; the table may hold more.
            out.stopped_at = Some(k.value().1.to_string());
            break;
        }
    }
    Ok(out)
}

/// One page of the session's history.
pub fn page(txn: &ReadTransaction, session: &str, q: &Query) -> Result<Page> {
    let chat = q.chat.as_deref();
    let mut scans = Vec::new();
    if q.direction != Some(Direction::In) {
        scans.push(scan(txn, queue::MSG, session, q, |bytes| {
            let rec = queue::decode(bytes)?;
            let keep = chat.is_none_or(|c| {
                rec.to == c
                    || rec.to_phone.as_deref() == Some(c)
                    || rec.to_lid.as_deref() == Some(c)
            });
            Ok(keep.then_some(Item::Out(rec)))
        })?);
    }
    if q.direction != Some(Direction::Out) {
        scans.push(scan(txn, inbound::MSG, session, q, |bytes| {
            let rec = inbound::decode(bytes)?;
            let keep = chat.is_none_or(|c| rec.chat == c);
            Ok(keep.then_some(Item::In(rec)))
        })?);
    }
    // How far every table was read: the nearest of the points where one stopped.
    let bound = scans
        .iter()
        .filter_map(|s| s.stopped_at.clone())
        .reduce(|a, b| match q.oldest_first {
            true => a.min(b),
            false => a.max(b),
        });
    let within = |id: &str| {
        bound.as_deref().is_none_or(|b| match q.oldest_first {
            true => id <= b,
            false => id >= b,
        })
    };
    let mut items: Vec<Item> = scans
        .into_iter()
        .flat_map(|s| s.items)
        .filter(|i| within(i.id()))
        .collect();
    items.sort_by(|a, b| match q.oldest_first {
        true => a.id().cmp(b.id()),
        false => b.id().cmp(a.id()),
    });
    items.truncate(q.limit);
    let next = if items.len() >= q.limit {
        items.last().map(|i| i.id().to_string())
    } else {
        bound
    };
    Ok(Page { items, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::queue::NewMessage;

    fn sent(store: &Store, to: &str) -> String {
        store
            .write_blocking(|t| {
                queue::enqueue(
                    t,
                    "s",
                    &NewMessage {
                        kind: "text".into(),
                        to: to.into(),
                        content: serde_json::json!({}),
                        blob: None,
                        idempotency_key: None,
                        now_ms: 0,
                        to_phone: None,
                        to_lid: None,
                    },
                )
            })
            .unwrap()
            .record
            .id
    }

    fn received(store: &Store, id: &str, chat: &str) {
        store
            .write_blocking(|t| {
                inbound::put(
                    t,
                    "s",
                    &InboundRecord {
                        id: id.into(),
                        chat: chat.into(),
                        wa_id: id.into(),
                        kind: "text".into(),
                        ..Default::default()
                    },
                )
            })
            .unwrap();
    }

    fn ids(p: &Page) -> Vec<&str> {
        p.items.iter().map(Item::id).collect()
    }

    #[test]
    fn pages_merge_both_directions_by_id_and_resume_after_their_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("h.redb"), 1 << 20).unwrap();
        // Received ids chosen to fall between and around the sent ones (msg_0... sorts
        // before a ULID starting with a later digit).
        received(&store, "msg_00", "a@s.whatsapp.net");
        let s1 = sent(&store, "a@s.whatsapp.net");
        let s2 = sent(&store, "b@s.whatsapp.net");
        received(&store, "msg_ZZ", "b@s.whatsapp.net");
        let q = |after: Option<&str>, oldest_first, limit| Query {
            after: after.map(str::to_string),
            oldest_first,
            limit,
            ..Default::default()
        };
        let all = store
            .read_blocking(|t| page(t, "s", &q(None, true, 10)))
            .unwrap();
        assert_eq!(
            ids(&all),
            vec!["msg_00", s1.as_str(), s2.as_str(), "msg_ZZ"]
        );
        assert_eq!(all.next, None);
        // Newest first, two at a time.
        let p1 = store
            .read_blocking(|t| page(t, "s", &q(None, false, 2)))
            .unwrap();
        assert_eq!(ids(&p1), vec!["msg_ZZ", s2.as_str()]);
        let p2 = store
            .read_blocking(|t| page(t, "s", &q(p1.next.as_deref(), false, 2)))
            .unwrap();
        assert_eq!(ids(&p2), vec![s1.as_str(), "msg_00"]);
        let p3 = store
            .read_blocking(|t| page(t, "s", &q(p2.next.as_deref(), false, 2)))
            .unwrap();
        assert!(p3.items.is_empty() && p3.next.is_none());
        // One chat, one direction.
        let b = store
            .read_blocking(|t| {
                page(
                    t,
                    "s",
                    &Query {
                        chat: Some("b@s.whatsapp.net".into()),
                        direction: Some(Direction::Out),
                        limit: 10,
                        ..Default::default()
                    },
                )
            })
            .unwrap();
        assert_eq!(ids(&b), vec![s2.as_str()]);
        // Another session's messages are not in the page.
        let other = store
            .read_blocking(|t| page(t, "t", &q(None, true, 10)))
            .unwrap();
        assert!(other.items.is_empty());
    }
}
