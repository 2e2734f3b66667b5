//! The only room that touches redb.
//!
//! One database file holds every session. [`Store`] is a cheap, cloneable handle; redb work
//! runs on tokio's blocking threads through [`Store::read`] and [`Store::write`], never on the
//! async runtime.
//!
//! Storage errors: redb refuses all further work after an I/O error until the file is
//! reopened. wagate does not reopen in place (open transactions and tables would have to be
//! torn down under their users); instead the first such error marks the store failed, the API
//! answers 503 from then on, and the daemon exits non-zero so systemd restarts it with a fresh
//! handle. Everything acknowledged before was committed durably, so nothing is lost.

pub mod inbound;
pub mod keys;
pub mod outbox;
pub mod pacing;
pub mod queue;
pub mod retention;
pub mod sessions;
pub mod wa_backend;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use tokio::sync::watch;

pub use wa_backend::RedbBackend;

/// The schema this build reads and writes. Bumped with every incompatible layout change.
pub const SCHEMA_VERSION: u32 = 1;

/// `meta` holds small facts about the file itself (schema version, creation time).
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why a store operation failed.
///
/// One enum for the whole room: callers mostly need to know "was it the disk" (the store is
/// now failed) or "was it the data" (bad row, wrong schema), and match on little else.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
    #[error("the database schema is version {found}, this build understands {expected}")]
    Schema { found: u32, expected: u32 },
    #[error("the database file is locked by another process (is the wagate daemon running?)")]
    Locked,
    #[error("the store has failed after an I/O error and must be reopened")]
    Failed,
    #[error("the store is closed")]
    Closed,
    #[error("corrupt record in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("blocking task failed: {0}")]
    Join(String),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl StoreError {
    /// An error after which redb refuses further work on this handle.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StoreError::Failed
                | StoreError::Redb(
                    redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::DatabaseClosed
                )
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Commit counts and time, for `/metrics`.
#[derive(Debug, Default)]
pub struct CommitStats {
    pub commits: std::sync::atomic::AtomicU64,
    /// Microseconds spent in `commit` (the fsync), summed.
    pub commit_micros: std::sync::atomic::AtomicU64,
}

struct Inner {
    commits: CommitStats,
    /// `None` once closed.
    db: std::sync::RwLock<Option<Database>>,
    path: PathBuf,
    failed: AtomicBool,
    failed_tx: watch::Sender<bool>,
}

/// Handle to the one redb database. Clone freely; the file closes when the last clone drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Open (or create) the database file, creating its parent directory, with a page cache of
    /// `cache_bytes`. Checks the schema version and creates every table so later read
    /// transactions never meet a missing one.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Store> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
                other => other.into(),
            })?;
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta
                .get("schema_version")?
                .map(|v| decode_u32(v.value()))
                .transpose()?;
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION.to_be_bytes().as_slice())?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                Some(found) => {
                    return Err(StoreError::Schema {
                        found,
                        expected: SCHEMA_VERSION,
                    });
                }
            }
        }
        sessions::create_tables(&txn)?;
        queue::create_tables(&txn)?;
        pacing::create_tables(&txn)?;
        keys::create_tables(&txn)?;
        outbox::create_tables(&txn)?;
        inbound::create_tables(&txn)?;
        wa_backend::create_tables(&txn)?;
        txn.commit()?;
        let (failed_tx, _) = watch::channel(false);
        Ok(Store {
            inner: Arc::new(Inner {
                commits: CommitStats::default(),
                db: std::sync::RwLock::new(Some(db)),
                path: path.to_path_buf(),
                failed: AtomicBool::new(false),
                failed_tx,
            }),
        })
    }

    /// How many write transactions committed, and how long their commits took.
    pub fn commit_stats(&self) -> &CommitStats {
        &self.inner.commits
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// False once a fatal storage error was seen; the API reports it and answers 503.
    pub fn is_ok(&self) -> bool {
        !self.inner.failed.load(Ordering::Acquire)
    }

    /// Resolves when the store has failed (see the module docs); the daemon exits then.
    pub fn failed(&self) -> watch::Receiver<bool> {
        self.inner.failed_tx.subscribe()
    }

    fn note<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r
            && e.is_fatal()
            && !self.inner.failed.swap(true, Ordering::AcqRel)
        {
            tracing::error!(error = %e, "store failed; refusing further work until restart");
            self.inner.failed_tx.send_replace(true);
        }
        r
    }

    /// Run `f` in a read transaction on the calling thread. For blocking contexts only.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        if !self.is_ok() {
            return Err(StoreError::Failed);
        }
        let r = (|| {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let txn = db.as_ref().ok_or(StoreError::Closed)?.begin_read()?;
            f(&txn)
        })();
        self.note(r)
    }

    /// Run `f` in a write transaction on the calling thread and commit it durably if `f`
    /// succeeds (on error the transaction is aborted and nothing is written).
    pub fn write_blocking<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        if !self.is_ok() {
            return Err(StoreError::Failed);
        }
        let r = (|| {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let txn = db.as_ref().ok_or(StoreError::Closed)?.begin_write()?;
            let out = f(&txn)?;
            let t = std::time::Instant::now();
            txn.commit()?;
            let c = &self.inner.commits;
            c.commits.fetch_add(1, Ordering::Relaxed);
            c.commit_micros
                .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            Ok(out)
        })();
        self.note(r)
    }

    /// [`Store::read_blocking`] on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_blocking(f))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// [`Store::write_blocking`] on a blocking thread.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write_blocking(f))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Close the database file now, even while clones of this handle live on (a client's
    /// lingering task may hold one): it waits for transactions under way, then every later
    /// operation fails with [`StoreError::Closed`] and the file lock is released.
    pub fn close(&self) {
        if let Ok(mut db) = self.inner.db.write() {
            db.take();
        }
    }

    /// The whatsapp-rust storage backend for one session, namespaced by its id.
    pub fn backend(&self, session: &str) -> RedbBackend {
        RedbBackend::new(self.clone(), session)
    }
}

fn decode_u32(bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table: "meta",
        detail: format!("expected 4 bytes, found {}", bytes.len()),
    })?;
    Ok(u32::from_be_bytes(arr))
}
