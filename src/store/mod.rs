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
//! writes share one transaction and its fsync. Writers take turns in a slot that holds the
//! group's open redb transaction; each runs its closure in it, then leaves it open when other
//! writers wait at the slot, or else commits it durably, with the slot held. The writers that
//! arrive during that commit are the next group. A lone write finds nobody waiting and commits
//! at once: no fixed wait. A group also commits once it holds [`GROUP_MAX_WRITES`] writes.
//! Every write returns only once the commit covering it is durable, and a failed commit fails
//! every write in it with the same error. A closure that fails (or
//! panics) may have written part of its work, so the group's transaction is aborted and its
//! other writes run their closures again in the next one: closures must not act outside their
//! transaction. One transaction per group writes each page it touches once, not once per write:
//! fewer bytes on the flash. A reader sees a commit only after its fsync, so nothing read can be
//! undone by a power cut.

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
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
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
    /// Writes committed ([`Store::write`] calls that succeeded; a group of them shares one
    /// redb transaction).
    pub commits: std::sync::atomic::AtomicU64,
    /// Durable commits: one fsync each, covering one or more write transactions.
    pub syncs: std::sync::atomic::AtomicU64,
    /// Microseconds spent in durable commits (the fsync), summed.
    pub commit_micros: std::sync::atomic::AtomicU64,
    /// Groups rolled back because one of their writes failed (the others ran again).
    pub rollbacks: std::sync::atomic::AtomicU64,
}

/// The writers' shared transaction (see the module docs): held by the writer whose closure
/// runs, and through the group's durable commit.
#[derive(Default)]
struct Slot {
    /// The open group's write transaction, between its writers.
    txn: Option<WriteTransaction>,
    /// The number of the group `txn` belongs to (or of the last group, when `None`).
    number: u64,
    /// Writes whose closures ran in `txn`.
    writes: usize,
}

/// What the writers waiting for their group know.
#[derive(Default)]
struct GroupState {
    /// Writers waiting to enter the slot: while there are any, a group stays open for them.
    arriving: u64,
    /// Every group up to this number has ended.
    ended: u64,
    /// Groups that did not end durably: how, and how many of their writers have not read it
    /// yet (the last one removes the entry, so none is forgotten while a writer waits).
    unlucky: std::collections::HashMap<u64, (Ending, usize)>,
}

/// How a group ended other than durably.
enum Ending {
    /// Its durable commit failed: every write in it fails so.
    Failed(SharedFailure),
    /// A write's closure failed (or panicked) in the group's transaction, which was aborted:
    /// the other writes in it run again.
    RolledBack,
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

/// A group commits once this many writes joined it, even while more arrive: a steady stream
/// of writers cannot hold its first ones back for longer.
const GROUP_MAX_WRITES: usize = 256;

#[derive(Default)]
struct Group {
    slot: Mutex<Slot>,
    state: Mutex<GroupState>,
    ended: Condvar,
}

/// How a write's turn in the slot went.
enum Turn<T> {
    /// Committed durably by this writer.
    Done(T),
    /// Left in the group's open transaction numbered so, for a later writer to commit.
    Joined(u64, T),
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
        let mut slot = self
            .inner
            .group
            .slot
            .lock()
            .map_err(|_| StoreError::Closed)?;
        self.roll_back(&mut slot);
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
    /// succeeds (on error nothing of it is written). Returns once the write is durable, alone or
    /// in a group (see the module docs). `f` may run more than once: when another write of its
    /// group fails, the group is rolled back and its other writes run again, so `f` must not act
    /// outside the transaction. Refused with [`StoreError::NoSpace`] before it starts while the
    /// disk is (nearly) full.
    pub fn write_blocking<T>(&self, f: impl FnMut(&WriteTransaction) -> Result<T>) -> Result<T> {
        self.ready()?;
        self.check_space()?;
        let r = self.write_grouped(f);
        self.note(r)
    }

    fn write_grouped<T>(&self, mut f: impl FnMut(&WriteTransaction) -> Result<T>) -> Result<T> {
        loop {
            match self.take_turn(&mut f)? {
                Turn::Done(out) => return Ok(out),
                Turn::Joined(number, out) => {
                    if self.wait_group(number)? {
                        return Ok(out);
                    }
                    // Rolled back by another write of the group: run again.
                }
            }
        }
    }

    /// Enter the slot, run `f` in the open group's transaction (beginning one if none is
    /// open), then leave it open for the writers arriving meanwhile or commit it durably.
    fn take_turn<T>(&self, f: &mut impl FnMut(&WriteTransaction) -> Result<T>) -> Result<Turn<T>> {
        let group = &self.inner.group;
        group.state.lock().map_err(|_| StoreError::Closed)?.arriving += 1;
        let slot = group.slot.lock();
        group.state.lock().map_err(|_| StoreError::Closed)?.arriving -= 1;
        let mut slot = slot.map_err(|_| StoreError::Closed)?;
        if slot.txn.is_none() {
            let db = self.inner.db.read().map_err(|_| StoreError::Closed)?;
            let txn = db.as_ref().ok_or(StoreError::Closed)?.begin_write()?;
            slot.txn = Some(txn);
            slot.number += 1;
            slot.writes = 0;
        }
        let number = slot.number;
        let Some(txn) = slot.txn.as_ref() else {
            return Err(StoreError::Closed);
        };
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(txn)));
        let out = match ran {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                // `f` may have written part of its work: the whole group goes.
                self.roll_back(&mut slot);
                return Err(e);
            }
            Err(panic) => {
                self.roll_back(&mut slot);
                drop(slot);
                std::panic::resume_unwind(panic);
            }
        };
        slot.writes += 1;
        let more = group.state.lock().map_err(|_| StoreError::Closed)?.arriving > 0;
        if more && slot.writes < GROUP_MAX_WRITES {
            return Ok(Turn::Joined(number, out));
        }
        let writes = slot.writes as u64;
        let Some(txn) = slot.txn.take() else {
            return Err(StoreError::Closed);
        };
        // Committed with the slot held: the writers arriving meanwhile are the next group.
        let r = self.commit_durably(txn);
        if r.is_ok() {
            self.inner
                .commits
                .commits
                .fetch_add(writes, Ordering::Relaxed);
        }
        let why = r
            .as_ref()
            .err()
            .map(|e| Ending::Failed(SharedFailure::of(e)));
        // Every write of the group but this one waits for the ending.
        self.end_group(number, why, slot.writes - 1);
        drop(slot);
        r.map(|()| Turn::Done(out))
    }

    /// Abort the open group's transaction: its writes that ran run again.
    fn roll_back(&self, slot: &mut Slot) {
        if let Some(txn) = slot.txn.take() {
            if let Err(e) = txn.abort() {
                tracing::warn!(error = %e, "aborting a write transaction failed");
            }
            if slot.writes > 0 {
                self.inner.commits.rollbacks.fetch_add(1, Ordering::Relaxed);
            }
            self.end_group(slot.number, Some(Ending::RolledBack), slot.writes);
        }
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

    /// Group `number` ended (`None`: durably); wakes its `waiters` writers.
    fn end_group(&self, number: u64, why: Option<Ending>, waiters: usize) {
        let group = &self.inner.group;
        // A poisoned lock: a thread panicked while holding it; the waiters then fail too.
        if let Ok(mut st) = group.state.lock() {
            st.ended = st.ended.max(number);
            if let Some(why) = why.filter(|_| waiters > 0) {
                st.unlucky.insert(number, (why, waiters));
            }
        }
        group.ended.notify_all();
    }

    /// Wait until group `number` ends: `true` when it is durable, `false` when it was rolled
    /// back (the write runs again), its error when its commit failed.
    fn wait_group(&self, number: u64) -> Result<bool> {
        let group = &self.inner.group;
        let mut st = group.state.lock().map_err(|_| StoreError::Closed)?;
        while st.ended < number {
            st = group.ended.wait(st).map_err(|_| StoreError::Closed)?;
        }
        let Some((why, left)) = st.unlucky.get_mut(&number) else {
            return Ok(true);
        };
        let out = match why {
            Ending::RolledBack => Ok(false),
            Ending::Failed(why) => Err(why.error()),
        };
        *left -= 1;
        if *left == 0 {
            st.unlucky.remove(&number);
        }
        out
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
        F: FnMut(&WriteTransaction) -> Result<T> + Send + 'static,
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
        // The slot first (the order every writer takes): no group transaction outlives the
        // file; an open group's writers run again and then find it closed.
        let mut slot = self.inner.group.slot.lock().ok();
        if let Some(slot) = slot.as_mut() {
            self.roll_back(slot);
        }
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
