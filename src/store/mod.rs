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
//!
//! A full disk is the exception: it is not a fault of the store and it passes. Before each
//! write transaction the free space of the file's filesystem is checked; below
//! [`MIN_FREE_BYTES`] the write is refused with [`StoreError::NoSpace`] (the API answers 507)
//! and redb is never touched, so reads go on working and the next write after space is freed
//! succeeds. A commit that meets "no space" anyway (it needed more than the margin) poisons
//! redb's handle: the store then drops it and opens the file again in place (waiting for the
//! transactions under way), retrying on later operations until that succeeds; meanwhile every
//! operation answers [`StoreError::NoSpace`]. The daemon stays up throughout.
//!
//! Group commit: an fsync on an SD card costs 5-30 ms and wears the flash, so concurrent
//! writers share it. redb holds its write lock through a durable commit's fsync, so the writers
//! that arrive meanwhile queue; when it ends, that queue is the next group: each of them but the
//! last commits without durability (redb keeps it in memory) and waits, and the last commits
//! durably, which makes the whole group durable with one fsync. A lone write finds no queue
//! and commits durably at once: no fixed wait. [`Store::write`] still returns only once its
//! transaction is durable, and a failed durable commit fails every write it covered with the
//! same error. A read can see a write before it is durable (within one fsync); whatever acts
//! outside the process on what it read writes first (the sender marks a message `sending`
//! before it goes), and a write returns only once everything committed before it is durable.
//! [`Store::settle_blocking`] waits for that point without writing.

pub mod calls;
pub mod contacts;
pub mod history;
pub mod inbound;
pub mod keys;
pub mod outbox;
pub mod pacing;
pub mod queue;
pub mod retention;
pub mod sessions;
pub mod wa_backend;
pub mod wire_gate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use tokio::sync::watch;

pub use wa_backend::RedbBackend;

/// Writes are refused (with [`StoreError::NoSpace`]) while the data directory's filesystem has
/// less free space than this: the margin keeps redb's own commits from meeting a full disk.
pub const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// How often a store whose handle a full disk poisoned tries to open the file again.
const REOPEN_INTERVAL: Duration = Duration::from_millis(500);

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
    /// The disk is full (or the quota used up); nothing was written. Not fatal: writes succeed
    /// again once space is freed.
    #[error("no space left for the store: {0}")]
    NoSpace(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("blocking task failed: {0}")]
    Join(String),
    /// The durable commit that was to cover this write failed (it was a shared one: see the
    /// module docs on group commit). Nothing of the write is durable.
    #[error("the commit this write joined failed: {0}")]
    Commit(String),
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

impl StoreError {
    /// The disk is full: this error, or an I/O error saying so (ENOSPC, EDQUOT).
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace(_) => true,
            StoreError::Redb(redb::Error::Io(e)) | StoreError::Io(e) => is_no_space_io(e),
            _ => false,
        }
    }
}

fn is_no_space_io(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Free bytes for unprivileged writers on the filesystem holding `dir`; `None` when it cannot
/// be asked.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and outlives the call; `st` is a valid out pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // the field types differ between targets
    (rc == 0).then(|| (st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Commit counts and time, for `/metrics`.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Write transactions committed (durably or into a group commit).
    pub commits: std::sync::atomic::AtomicU64,
    /// Durable commits: one fsync each, covering one or more write transactions.
    pub syncs: std::sync::atomic::AtomicU64,
    /// Microseconds spent in durable commits (the fsync), summed.
    pub commit_micros: std::sync::atomic::AtomicU64,
}

/// Where group commit stands (see the module docs). Writes are numbered in commit order.
#[derive(Default)]
struct GroupState {
    /// The number of the last write transaction committed (or about to be, by the writer that
    /// holds redb's write lock).
    last: u64,
    /// Every write up to this number is durable.
    durable: u64,
    /// A durable commit is under way.
    syncing: bool,
    /// Writers between their start and their decision to commit durably or not.
    queued: u64,
    /// Of the writers queued when the last durable commit ended, how many have not decided
    /// yet: the last of them commits durably.
    group_left: u64,
    /// Durable commits that failed: the writes numbered in `(from, to]` failed with `why`.
    /// Kept short; a waiter reads its own within one wake-up.
    failures: std::collections::VecDeque<(u64, u64, SharedFailure)>,
}

#[derive(Clone)]
enum SharedFailure {
    NoSpace(String),
    Fatal,
    Closed,
    Other(String),
}

impl SharedFailure {
    fn of(e: &StoreError) -> SharedFailure {
        if e.is_no_space() {
            SharedFailure::NoSpace(e.to_string())
        } else if e.is_fatal() {
            SharedFailure::Fatal
        } else if matches!(e, StoreError::Closed) {
            SharedFailure::Closed
        } else {
            SharedFailure::Other(e.to_string())
        }
    }

    fn error(&self) -> StoreError {
        match self {
            SharedFailure::NoSpace(m) => StoreError::NoSpace(m.clone()),
            SharedFailure::Fatal => StoreError::Failed,
            SharedFailure::Closed => StoreError::Closed,
            SharedFailure::Other(m) => StoreError::Commit(m.clone()),
        }
    }
}

/// A writer counted in [`GroupState::queued`] until it decides how to commit (or fails
/// before).
struct Queued<'a> {
    group: &'a Group,
    counted: bool,
}

impl<'a> Queued<'a> {
    fn new(group: &'a Group) -> Result<Queued<'a>> {
        group.state.lock().map_err(|_| StoreError::Closed)?.queued += 1;
        Ok(Queued {
            group,
            counted: true,
        })
    }

    /// With redb's write lock held and the transaction ready: the write's number, and whether
    /// it commits durably (it is the last of its group, or no group is waiting).
    fn decide(&mut self) -> Result<(u64, bool)> {
        let mut st = self.group.state.lock().map_err(|_| StoreError::Closed)?;
        self.counted = false;
        st.queued -= 1;
        st.last += 1;
        let lead = !st.syncing && st.group_left <= 1;
        if lead {
            st.syncing = true;
            st.group_left = 0;
        } else if !st.syncing {
            st.group_left -= 1;
        }
        Ok((st.last, lead))
    }
}

impl Drop for Queued<'_> {
    /// A writer that failed before deciding: if it was to commit its group durably, the
    /// waiters make an empty durable commit instead.
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        if let Ok(mut st) = self.group.state.lock() {
            st.queued -= 1;
            st.group_left = st.group_left.saturating_sub(1);
        }
        self.group.ended.notify_all();
    }
}

/// How many failed durable commits [`GroupState`] remembers.
const FAILURES_KEPT: usize = 16;

#[derive(Default)]
struct Group {
    state: Mutex<GroupState>,
    ended: Condvar,
}

struct Inner {
    commits: CommitStats,
    group: Group,
    /// The sessions' wire gates' counters ([`wire_gate`]).
    wire: Arc<wire_gate::WireStats>,
    /// `None` once closed.
    db: std::sync::RwLock<Option<Database>>,
    path: PathBuf,
    /// The page cache, to open the file again; `None` for a store on a caller's backend
    /// ([`Store::open_with_backend`]), which cannot be reopened.
    reopen_cache: Option<usize>,
    /// The free-space check before writes: the directory whose filesystem holds the file.
    space_dir: Option<PathBuf>,
    /// A full disk poisoned the redb handle: open the file again before the next use.
    broken: AtomicBool,
    last_reopen: std::sync::Mutex<Option<Instant>>,
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
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)?;
        let db = open_file(path, cache_bytes)?;
        Store::init(db, path.to_path_buf(), Some(cache_bytes), Some(dir))
    }

    /// Open (or create) a database on a redb storage backend of the caller's (memory, a
    /// fault-injecting wrapper, another medium), with a page cache of `cache_bytes`. Checks and
    /// creates what [`Store::open`] does. `name` stands for the path in logs and
    /// [`Store::path`]. Such a store has no free-space check and is not reopened after a full
    /// disk: a "no space" from the backend answers [`StoreError::NoSpace`] once, then the
    /// store is failed like after any other I/O error.
    pub fn open_with_backend(
        backend: impl redb::StorageBackend,
        cache_bytes: usize,
        name: &str,
    ) -> Result<Store> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create_with_backend(backend)?;
        Store::init(db, PathBuf::from(name), None, None)
    }

    fn init(
        db: Database,
        path: PathBuf,
        reopen_cache: Option<usize>,
        space_dir: Option<PathBuf>,
    ) -> Result<Store> {
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
        contacts::create_tables(&txn)?;
        calls::create_tables(&txn)?;
        wa_backend::create_tables(&txn)?;
        txn.commit()?;
        let (failed_tx, _) = watch::channel(false);
        Ok(Store {
            inner: Arc::new(Inner {
                commits: CommitStats::default(),
                group: Group::default(),
                wire: Arc::default(),
                db: std::sync::RwLock::new(Some(db)),
                path,
                reopen_cache,
                space_dir,
                broken: AtomicBool::new(false),
                last_reopen: std::sync::Mutex::new(None),
                failed: AtomicBool::new(false),
                failed_tx,
            }),
        })
    }

    /// How many write transactions committed, and how long their commits took.
    pub fn commit_stats(&self) -> &CommitStats {
        &self.inner.commits
    }

    /// How often frames waited for Signal state to be written, across sessions.
    pub fn wire_stats(&self) -> &Arc<wire_gate::WireStats> {
        &self.inner.wire
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

    fn fail(&self, e: &StoreError) {
        if !self.inner.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %e, "store failed; refusing further work until restart");
            self.inner.failed_tx.send_replace(true);
        }
    }

    fn note<T>(&self, r: Result<T>) -> Result<T> {
        let Err(e) = r else { return r };
        let from_redb = matches!(e, StoreError::Redb(_) | StoreError::Io(_));
        if from_redb && e.is_no_space() {
            // redb refuses further work on this handle; open the file again once there is
            // room (see the module docs).
            if self.inner.reopen_cache.is_some() {
                if !self.inner.broken.swap(true, Ordering::AcqRel) {
                    tracing::warn!(error = %e, "disk full under a commit; the store reopens when space is freed");
                }
            } else {
                self.fail(&e);
            }
            return Err(StoreError::NoSpace(e.to_string()));
        }
        if e.is_fatal() && self.inner.broken.load(Ordering::Acquire) {
            // Another operation on the handle the full disk poisoned.
            return Err(StoreError::NoSpace(e.to_string()));
        }
        if e.is_fatal() {
            self.fail(&e);
        }
        Err(e)
    }

    /// Whether work may start: not failed, and the handle reopened if a full disk broke it.
    fn ready(&self) -> Result<()> {
        if !self.is_ok() {
            return Err(StoreError::Failed);
        }
        if self.inner.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        Ok(())
    }

    /// Drop the handle a full disk poisoned and open the file again (at most every
    /// [`REOPEN_INTERVAL`]); waits for the transactions under way.
    fn reopen(&self) -> Result<()> {
        let Some(cache) = self.inner.reopen_cache else {
            return Err(StoreError::Failed);
        };
        {
            let mut last = self
                .inner
                .last_reopen
                .lock()
                .map_err(|_| StoreError::Closed)?;
            if last.is_some_and(|t| t.elapsed() < REOPEN_INTERVAL) {
                return Err(StoreError::NoSpace(
                    "the store waits for free space to reopen".into(),
                ));
            }
            *last = Some(Instant::now());
        }
        let mut db = self.inner.db.write().map_err(|_| StoreError::Closed)?;
        if !self.inner.broken.load(Ordering::Acquire) {
            return Ok(()); // another thread reopened it
        }
        drop(db.take());
        match open_file(&self.inner.path, cache) {
            Ok(new) => {
                *db = Some(new);
                self.inner.broken.store(false, Ordering::Release);
                tracing::info!(path = %self.inner.path.display(), "store reopened after a full disk");
                Ok(())
            }
            Err(e) if e.is_no_space() => Err(StoreError::NoSpace(e.to_string())),
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Refuse a write while the filesystem has less than [`MIN_FREE_BYTES`] free.
    fn check_space(&self) -> Result<()> {
        let Some(dir) = &self.inner.space_dir else {
            return Ok(());
        };
        match free_bytes(dir) {
            Some(free) if free < MIN_FREE_BYTES => Err(StoreError::NoSpace(format!(
                "{free} bytes free in {}, {MIN_FREE_BYTES} needed",
                dir.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Run `f` in a read transaction on the calling thread. For blocking contexts only.
    pub fn read_blocking<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        self.ready()?;
        let r = (|| {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let txn = db.as_ref().ok_or(StoreError::Closed)?.begin_read()?;
            f(&txn)
        })();
        self.note(r)
    }

    /// Run `f` in a write transaction on the calling thread and commit it durably if `f`
    /// succeeds (on error the transaction is aborted and nothing is written). Returns once the
    /// transaction is durable, alone or in a group commit (see the module docs). Refused with
    /// [`StoreError::NoSpace`] before it starts while the disk is (nearly) full.
    pub fn write_blocking<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        self.ready()?;
        self.check_space()?;
        let r = self.write_grouped(f);
        self.note(r)
    }

    fn write_grouped<T>(&self, f: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let group = &self.inner.group;
        let mut queued = Queued::new(group)?;
        let (out, n) = {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let mut txn = db.as_ref().ok_or(StoreError::Closed)?.begin_write()?;
            let out = f(&txn)?;
            // Numbered while redb's write lock is held, so numbers follow commit order.
            let (n, lead) = queued.decide()?;
            if lead {
                // The last of its group (or alone): this commit's fsync covers it and every
                // write before it.
                let r = self.commit_durably(txn);
                self.end_sync(n, &r);
                self.inner.commits.commits.fetch_add(1, Ordering::Relaxed);
                return r.map(|()| out);
            }
            txn.set_durability(Durability::None)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            txn.commit()?;
            self.inner.commits.commits.fetch_add(1, Ordering::Relaxed);
            (out, n)
        };
        self.wait_durable(n)?;
        Ok(out)
    }

    /// Commit `txn` durably (the fsync), counted and timed.
    fn commit_durably(&self, txn: WriteTransaction) -> Result<()> {
        let t = Instant::now();
        txn.commit()?;
        let c = &self.inner.commits;
        c.syncs.fetch_add(1, Ordering::Relaxed);
        c.commit_micros
            .fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// A durable commit covering writes up to `n` ended with `r`: wake the writers waiting.
    fn end_sync(&self, n: u64, r: &Result<()>) {
        let group = &self.inner.group;
        // A poisoned lock: a writer panicked while holding it; the waiters then fail too.
        if let Ok(mut st) = group.state.lock() {
            st.syncing = false;
            // The writers that queued behind this commit are the next group.
            st.group_left = st.queued;
            match r {
                Ok(()) => st.durable = st.durable.max(n),
                Err(e) => {
                    let from = st.durable;
                    if st.failures.len() == FAILURES_KEPT {
                        st.failures.pop_front();
                    }
                    st.failures.push_back((from, n, SharedFailure::of(e)));
                }
            }
        }
        group.ended.notify_all();
    }

    /// Wait until write `n` is durable, making the durable commit when none is under way.
    fn wait_durable(&self, n: u64) -> Result<()> {
        let group = &self.inner.group;
        let mut st = group.state.lock().map_err(|_| StoreError::Closed)?;
        loop {
            if let Some((_, _, why)) = st
                .failures
                .iter()
                .find(|(from, to, _)| *from < n && n <= *to)
            {
                return Err(why.error());
            }
            if st.durable >= n {
                return Ok(());
            }
            // Nobody is left to commit durably (the group's last writer failed, or this is
            // `settle_blocking`): make the empty durable commit here.
            if !st.syncing && st.queued == 0 {
                st.syncing = true;
                drop(st);
                let (upto, r) = self.sync_now();
                self.end_sync(upto, &r);
                r?;
                st = group.state.lock().map_err(|_| StoreError::Closed)?;
                continue;
            }
            st = group.ended.wait(st).map_err(|_| StoreError::Closed)?;
        }
    }

    /// An empty durable commit: it makes every write committed before it durable. Returns the
    /// number of the last write it covers.
    fn sync_now(&self) -> (u64, Result<()>) {
        let last = || {
            self.inner
                .group
                .state
                .lock()
                .map(|st| st.last)
                .unwrap_or(u64::MAX)
        };
        let r = (|| {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let txn = db.as_ref().ok_or(StoreError::Closed)?.begin_write()?;
            // With redb's write lock held, no write is between its number and its commit.
            let upto = last();
            self.commit_durably(txn).map(|()| upto)
        })();
        match r {
            Ok(upto) => (upto, Ok(())),
            Err(e) => (last(), Err(e)),
        }
    }

    /// Wait until every write committed so far is durable (see the module docs); a write made
    /// now would return at the same point. Returns at once when nothing waits for an fsync.
    pub fn settle_blocking(&self) -> Result<()> {
        let n = self
            .inner
            .group
            .state
            .lock()
            .map_err(|_| StoreError::Closed)?
            .last;
        self.wait_durable(n)
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

    /// [`Store::read`], answering only once everything the read saw is durable: a write in a
    /// group commit is visible from its commit, before the fsync that covers it. What a
    /// reader hands on from here (the event stream) cannot be undone by a failed fsync.
    pub async fn read_durable<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let seen = store.read_blocking(f)?;
            store.settle_blocking()?;
            Ok(seen)
        })
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
        self.inner.broken.store(false, Ordering::Release);
        if let Ok(mut db) = self.inner.db.write() {
            db.take();
        }
    }

    /// The whatsapp-rust storage backend for one session, namespaced by its id.
    pub fn backend(&self, session: &str) -> RedbBackend {
        RedbBackend::new(self.clone(), session)
    }
}

fn open_file(path: &Path, cache_bytes: usize) -> Result<Database> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Locked,
            other => other.into(),
        })
}

fn decode_u32(bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        table: "meta",
        detail: format!("expected 4 bytes, found {}", bytes.len()),
    })?;
    Ok(u32::from_be_bytes(arr))
}
