//! whatsapp-rust's `Backend` on redb, one namespace per session. (Being written.)

use super::{Result, Store};
use redb::WriteTransaction;

pub(crate) fn create_tables(_txn: &WriteTransaction) -> Result<()> {
    Ok(())
}

/// The whatsapp-rust storage backend of one session.
#[derive(Clone, Debug)]
pub struct RedbBackend {
    store: Store,
    session: std::sync::Arc<str>,
}

impl RedbBackend {
    pub(crate) fn new(store: Store, session: &str) -> Self {
        RedbBackend {
            store,
            session: session.into(),
        }
    }

    pub fn session(&self) -> &str {
        &self.session
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Remove every whatsapp-rust key of `session` (identity, sessions, prekeys, app state...).
pub(crate) fn delete_session_keys(_txn: &WriteTransaction, _session: &str) -> Result<()> {
    Ok(())
}
