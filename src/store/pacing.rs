//! What pacing remembers across restarts: each session's settings overrides, when it sent
//! (the rate-limit windows), and which content went to whom (the duplicate guard).
//!
//! Layout (every key starts with the session id):
//! - `pace_settings` session -> the session's overrides as JSON (opaque to the store)
//! - `pace_sends`    (session, unix ms, n) -> (): one row per send; rows older than a day
//!   are pruned as new ones arrive, so a session keeps at most a day of them
//! - `pace_content`  (session, content hash, unix ms, recipient) -> msg id: accepted
//!   messages by content, for the duplicate guard
//! - `pace_content_time` (session, unix ms, content hash, recipient) -> (): the same rows by
//!   time, so each accepted message forgets every row of its session past the guard's window

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use super::Result;

const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("pace_settings");
const SENDS: TimeLog = TableDefinition::new("pace_sends");
const CONTENT: TableDefinition<(&str, &str, u64, &str), &str> =
    TableDefinition::new("pace_content");
const CONTENT_TIME: TableDefinition<(&str, u64, &str, &str), ()> =
    TableDefinition::new("pace_content_time");

/// How long send times are kept: the longest rate-limit window.
pub const SEND_HISTORY_MS: i64 = 24 * 3600 * 1000;

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(SETTINGS)?;
    txn.open_table(SENDS)?;
    let content = txn.open_table(CONTENT)?;
    let mut by_time = txn.open_table(CONTENT_TIME)?;
    // A store from before the time index: index what it has, once.
    if by_time.is_empty()? && !content.is_empty()? {
        for row in content.iter()? {
            let (k, _) = row?;
            let (session, hash, at, to) = k.value();
            by_time.insert((session, at, hash, to), ())?;
        }
    }
    Ok(())
}

pub(super) fn ms(at: i64) -> u64 {
    u64::try_from(at).unwrap_or(0)
}

/// A per-session log of instants: (session, unix ms, n) -> (), `n` telling apart the rows of
/// one millisecond. The send log here and the number-check log (`super::contacts`).
pub(super) type TimeLog = TableDefinition<'static, (&'static str, u64, u64), ()>;

/// Record `count` instants at `at` in `table` and forget the session's rows older than
/// `keep_ms` before it.
pub(super) fn log_times(
    txn: &WriteTransaction,
    table: TimeLog,
    session: &str,
    at: i64,
    count: usize,
    keep_ms: i64,
) -> Result<()> {
    let mut t = txn.open_table(table)?;
    let at = ms(at);
    let first = t
        .range((session, at, 0)..=(session, at, u64::MAX))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().2 + 1)
        .unwrap_or(0);
    for n in first..first + count as u64 {
        t.insert((session, at, n), ())?;
    }
    let horizon = at.saturating_sub(ms(keep_ms));
    t.retain_in((session, 0, 0)..(session, horizon, 0), |_, _| false)?;
    Ok(())
}

/// The session's instants in `table` since `since` (unix ms, inclusive), ascending.
pub(super) fn times_since(
    txn: &ReadTransaction,
    table: TimeLog,
    session: &str,
    since: i64,
) -> Result<Vec<i64>> {
    times_in(&txn.open_table(table)?, session, since)
}

fn times_in(
    t: &impl ReadableTable<(&'static str, u64, u64), ()>,
    session: &str,
    since: i64,
) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for row in t.range((session, ms(since), 0)..=(session, u64::MAX, u64::MAX))? {
        let (k, _) = row?;
        out.push(i64::try_from(k.value().1).unwrap_or(i64::MAX));
    }
    Ok(out)
}

/// The session's overrides (JSON), if it has any.
pub fn overrides(txn: &ReadTransaction, session: &str) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(SETTINGS)?;
    Ok(t.get(session)?.map(|v| v.value().to_vec()))
}

/// Replace the session's overrides (JSON); `None` removes them.
pub fn set_overrides(txn: &WriteTransaction, session: &str, json: Option<&[u8]>) -> Result<()> {
    let mut t = txn.open_table(SETTINGS)?;
    match json {
        Some(j) => {
            t.insert(session, j)?;
        }
        None => {
            t.remove(session)?;
        }
    }
    Ok(())
}

/// Record a send at `at` and forget sends older than [`SEND_HISTORY_MS`].
pub fn log_send(txn: &WriteTransaction, session: &str, at: i64) -> Result<()> {
    log_times(txn, SENDS, session, at, 1, SEND_HISTORY_MS)
}

/// Record `count` sends at `at` (an admin change that adds people counts one per number).
pub fn log_sends(txn: &WriteTransaction, session: &str, at: i64, count: usize) -> Result<()> {
    log_times(txn, SENDS, session, at, count, SEND_HISTORY_MS)
}

/// [`sends_since`] inside a write transaction (to check and take room at once).
pub fn sends_since_w(txn: &WriteTransaction, session: &str, since: i64) -> Result<Vec<i64>> {
    times_in(&txn.open_table(SENDS)?, session, since)
}

/// Send times since `since` (unix ms, inclusive), ascending.
pub fn sends_since(txn: &ReadTransaction, session: &str, since: i64) -> Result<Vec<i64>> {
    times_since(txn, SENDS, session, since)
}

/// Recipients that were sent (accepted for) this content since `since`, oldest first.
pub fn content_recipients(
    txn: &WriteTransaction,
    session: &str,
    hash: &str,
    since: i64,
) -> Result<Vec<String>> {
    let t = txn.open_table(CONTENT)?;
    let mut out = Vec::new();
    for row in t.range((session, hash, ms(since), "")..=(session, hash, u64::MAX, "\u{10FFFF}"))? {
        let (k, _) = row?;
        out.push(k.value().3.to_string());
    }
    Ok(out)
}

/// Remember that content `hash` was accepted for `to` at `at`.
pub fn log_content(
    txn: &WriteTransaction,
    session: &str,
    hash: &str,
    to: &str,
    at: i64,
    msg: &str,
) -> Result<()> {
    txn.open_table(CONTENT)?
        .insert((session, hash, ms(at), to), msg)?;
    txn.open_table(CONTENT_TIME)?
        .insert((session, ms(at), hash, to), ())?;
    Ok(())
}

/// Forget every content row of the session from before `before` (whatever its content).
/// Returns how many went.
pub fn forget_content(txn: &WriteTransaction, session: &str, before: i64) -> Result<u64> {
    let mut old = Vec::new();
    {
        let mut by_time = txn.open_table(CONTENT_TIME)?;
        for row in by_time.extract_from_if(
            (session, 0, "", "")..(session, ms(before), "", ""),
            |_, _| true,
        )? {
            let (k, _) = row?;
            let (_, at, hash, to) = k.value();
            old.push((at, hash.to_owned(), to.to_owned()));
        }
    }
    let mut content = txn.open_table(CONTENT)?;
    for (at, hash, to) in &old {
        content.remove((session, hash.as_str(), *at, to.as_str()))?;
    }
    Ok(old.len() as u64)
}

/// Remove every pacing row of a session.
pub(crate) fn delete_session(txn: &WriteTransaction, session: &str) -> Result<()> {
    txn.open_table(SETTINGS)?.remove(session)?;
    txn.open_table(SENDS)?
        .retain_in((session, 0, 0)..=(session, u64::MAX, u64::MAX), |_, _| {
            false
        })?;
    let end = format!("{session}\0");
    txn.open_table(CONTENT)?
        .retain_in((session, "", 0, "")..(end.as_str(), "", 0, ""), |_, _| {
            false
        })?;
    txn.open_table(CONTENT_TIME)?
        .retain_in((session, 0, "", "")..(end.as_str(), 0, "", ""), |_, _| {
            false
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn sends_are_kept_a_day_and_content_per_window() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("p.redb"), 1 << 20).unwrap();
        let day = SEND_HISTORY_MS;
        s.write_blocking(|t| {
            log_send(t, "a", 1_000)?;
            log_send(t, "a", 1_000)?;
            log_send(t, "ab", 1_500)?;
            log_send(t, "a", 2_000)
        })
        .unwrap();
        assert_eq!(
            s.read_blocking(|t| sends_since(t, "a", 0)).unwrap(),
            vec![1_000, 1_000, 2_000]
        );
        assert_eq!(
            s.read_blocking(|t| sends_since(t, "a", 1_001)).unwrap(),
            vec![2_000]
        );
        s.write_blocking(|t| log_send(t, "a", 1_500 + day)).unwrap();
        assert_eq!(
            s.read_blocking(|t| sends_since(t, "a", 0)).unwrap(),
            vec![2_000, 1_500 + day]
        );
        assert_eq!(
            s.read_blocking(|t| sends_since(t, "ab", 0)).unwrap(),
            vec![1_500]
        );

        let got = s
            .write_blocking(|t| {
                log_content(t, "a", "h1", "x@s", 10, "m1")?;
                log_content(t, "a", "h1", "y@s", 20, "m2")?;
                log_content(t, "a", "h2", "z@s", 20, "m3")?;
                log_content(t, "a", "h1", "w@s", 100, "m4")?;
                content_recipients(t, "a", "h1", 0)
            })
            .unwrap();
        assert_eq!(got, vec!["x@s", "y@s", "w@s"]);
        // Past the window every content's old rows go, not only the one sent again (the soak
        // found a row kept for ever for each content that never came back).
        let gone = s.write_blocking(|t| forget_content(t, "a", 15)).unwrap();
        assert_eq!(gone, 1);
        let gone = s.write_blocking(|t| forget_content(t, "a", 50)).unwrap();
        assert_eq!(gone, 2, "h1 and h2 at 20");
        assert_eq!(
            s.write_blocking(|t| content_recipients(t, "a", "h2", 0))
                .unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            s.write_blocking(|t| content_recipients(t, "a", "h1", 0))
                .unwrap(),
            vec!["w@s"]
        );

        // A store from before the time index has content rows only: opening indexes them.
        s.write_blocking(|t| {
            t.open_table(CONTENT)?
                .insert(("a", "h3", 30, "v@s"), "m5")?;
            t.open_table(CONTENT_TIME)?.retain(|_, _| false)?;
            create_tables(t)
        })
        .unwrap();
        assert_eq!(
            s.write_blocking(|t| forget_content(t, "a", 150)).unwrap(),
            2
        );

        s.write_blocking(|t| {
            set_overrides(t, "a", Some(b"{}"))?;
            delete_session(t, "a")
        })
        .unwrap();
        assert!(s.read_blocking(|t| overrides(t, "a")).unwrap().is_none());
        assert!(
            s.read_blocking(|t| sends_since(t, "a", 0))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.read_blocking(|t| sends_since(t, "ab", 0)).unwrap().len(),
            1
        );
    }
}
