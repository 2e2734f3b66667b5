//! What number checks remember: each session's answers (a cache with a time-to-live, so
//! asking twice does not ask WhatsApp twice) and when it asked (the check budget's windows).
//!
//! Layout (every key starts with the session id):
//! - `contact_cache`  (session, number) -> (when asked, unix ms; the answer as JSON, opaque
//!   to the store); rows older than the longest cache lifetime are pruned by the retention
//!   rounds
//! - `contact_checks` (session, unix ms, n) -> (): one row per number asked of WhatsApp;
//!   rows older than a day are pruned as new ones arrive

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use super::Result;
use super::pacing::{TimeLog, log_times, ms, times_since};

const CACHE: TableDefinition<(&str, &str), (u64, &[u8])> = TableDefinition::new("contact_cache");
const CHECKS: TimeLog = TableDefinition::new("contact_checks");

/// How long check times are kept: the longest budget window.
pub const CHECK_HISTORY_MS: i64 = 24 * 3600 * 1000;

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<()> {
    txn.open_table(CACHE)?;
    txn.open_table(CHECKS)?;
    Ok(())
}

/// The cached answer for `number` (JSON), if any.
pub fn cached(txn: &ReadTransaction, session: &str, number: &str) -> Result<Option<Vec<u8>>> {
    let t = txn.open_table(CACHE)?;
    Ok(t.get((session, number))?.map(|v| v.value().1.to_vec()))
}

/// Keep the answer for `number`, asked at `at` (unix ms).
pub fn put(
    txn: &WriteTransaction,
    session: &str,
    number: &str,
    at: i64,
    json: &[u8],
) -> Result<()> {
    txn.open_table(CACHE)?
        .insert((session, number), (ms(at), json))?;
    Ok(())
}

/// Forget up to `limit` answers asked before `older_than` (unix ms), of any session.
/// Returns how many went.
pub fn prune(txn: &WriteTransaction, older_than: i64, limit: usize) -> Result<u64> {
    let mut t = txn.open_table(CACHE)?;
    let mut old = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        if v.value().0 < ms(older_than) {
            let (session, number) = k.value();
            old.push((session.to_owned(), number.to_owned()));
            if old.len() >= limit {
                break;
            }
        }
    }
    for (session, number) in &old {
        t.remove((session.as_str(), number.as_str()))?;
    }
    Ok(old.len() as u64)
}

/// Record `count` numbers asked at `at`; forget check times older than a day.
pub fn log_checks(txn: &WriteTransaction, session: &str, at: i64, count: usize) -> Result<()> {
    log_times(txn, CHECKS, session, at, count, CHECK_HISTORY_MS)
}

/// Check times since `since` (unix ms, inclusive), ascending: one per number asked.
pub fn checks_since(txn: &ReadTransaction, session: &str, since: i64) -> Result<Vec<i64>> {
    times_since(txn, CHECKS, session, since)
}

/// Remove every row of a session.
pub(crate) fn delete_session(txn: &WriteTransaction, session: &str) -> Result<()> {
    let end = format!("{session}\0");
    txn.open_table(CACHE)?
        .retain_in((session, "")..(end.as_str(), ""), |_, _| false)?;
    txn.open_table(CHECKS)?
        .retain_in((session, 0, 0)..=(session, u64::MAX, u64::MAX), |_, _| {
            false
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn checks_are_counted_per_number_and_forgotten_after_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let st = Store::open(&dir.path().join("t.redb"), 1 << 20).unwrap();
        st.write_blocking(|t| log_checks(t, "a", 1_000, 3)).unwrap();
        st.write_blocking(|t| log_checks(t, "a", 1_000, 2)).unwrap();
        st.write_blocking(|t| log_checks(t, "b", 1_000, 1)).unwrap();
        let a = st.read_blocking(|t| checks_since(t, "a", 0)).unwrap();
        assert_eq!(a, vec![1_000; 5]);
        let later = 1_000 + CHECK_HISTORY_MS + 1;
        st.write_blocking(|t| log_checks(t, "a", later, 1)).unwrap();
        let a = st.read_blocking(|t| checks_since(t, "a", 0)).unwrap();
        assert_eq!(a, vec![later], "a day-old check is forgotten");
        st.write_blocking(|t| {
            put(t, "a", "15551234567", 5, b"{}")?;
            put(t, "b", "15551234567", 5, b"{\"b\":1}")?;
            put(t, "b", "15551234568", 50, b"{}")?;
            delete_session(t, "a")
        })
        .unwrap();
        let got = |s: &'static str, n: &'static str| st.read_blocking(|t| cached(t, s, n)).unwrap();
        assert!(
            got("a", "15551234567").is_none(),
            "the session's rows went with it"
        );
        assert_eq!(got("b", "15551234567").as_deref(), Some(&b"{\"b\":1}"[..]));
        assert_eq!(st.write_blocking(|t| prune(t, 10, 100)).unwrap(), 1);
        assert!(got("b", "15551234567").is_none(), "asked before 10: pruned");
        assert!(got("b", "15551234568").is_some());
        assert_eq!(
            st.read_blocking(|t| checks_since(t, "b", 0)).unwrap(),
            vec![1_000]
        );
    }
}
