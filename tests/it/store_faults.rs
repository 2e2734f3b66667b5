//! The store under storage faults, through [`Store::open_with_backend`] on a redb
//! `StorageBackend` that can lose power or run out of space.
//!
//! Power cut (the model redb's own crash tests use): every write since the last
//! `sync_data` is dropped and the last one is torn (a random prefix of its bytes reaches the
//! medium). The test runs what a 202 and webhook recording do (enqueue with media and an
//! idempotency key, mark sending, mark sent with its `message.sent` event and the send log,
//! mark failed with its event, session events), cuts the power at a random backend operation,
//! opens the surviving bytes again (redb repairs them) and checks: the file opens, every
//! transaction that returned `Ok` is there, the one cut under way is there whole or not at
//! all, and the queue's own bookkeeping (depth, queue rows, media, events) agrees. Then it goes
//! on from that state and cuts again. `POWER_CUTS` sets the number of cuts (default 60),
//! `POWER_SEED` replays a run; the figures are printed.
//!
//! Group commit: concurrent writers on a medium whose fsync takes 2 ms share fsyncs, and a
//! power cut while they write keeps every write that returned `Ok` (a write that joined a
//! group commit the cut broke fails, like the one that led it).
//!
//! Full disk: a backend that answers ENOSPC gives the typed `StoreError::NoSpace`, which the
//! API answers with 507 `insufficient_storage`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::StorageBackend;
use wagate::events::{Event, EventKind};
use wagate::net::api::ApiError;
use wagate::store::queue::{self, MessageStatus, NewMessage};
use wagate::store::{Store, StoreError, outbox, pacing};

const SESSION: &str = "default";

#[derive(Debug, Default)]
struct Disk {
    /// What the last `sync_data` made durable.
    durable: Vec<u8>,
    /// What reads see: `durable` and every operation since.
    current: Vec<u8>,
    /// The writes (offset, bytes) since the last sync, in order.
    unsynced: Vec<(u64, Vec<u8>)>,
    /// Backend operations (write, set_len, sync) left before the power goes; `None`: never.
    countdown: Option<u64>,
    /// The power went: what the medium holds, and every operation fails from then on.
    survivor: Option<Vec<u8>>,
    /// Writes and length changes fail with ENOSPC.
    full: bool,
    rng: Option<StdRng>,
    syncs: u64,
    torn_bytes: u64,
    /// How long each `sync_data` takes (the medium is busy meanwhile), as on an SD card.
    sync_delay: std::time::Duration,
}

impl Disk {
    /// The power goes now, during `in_flight` (a write under way) if given.
    fn cut(&mut self, in_flight: Option<(u64, &[u8])>) {
        let mut image = self.durable.clone();
        let last = in_flight.or_else(|| {
            self.unsynced
                .last()
                .map(|(off, data)| (*off, data.as_slice()))
        });
        if let Some((off, data)) = last {
            let rng = self.rng.as_mut().expect("a cut has a rng");
            let keep = rng.random_range(0..=data.len());
            let end = off as usize + keep;
            if image.len() < end {
                image.resize(end, 0);
            }
            image[off as usize..end].copy_from_slice(&data[..keep]);
            self.torn_bytes += keep as u64;
        }
        self.survivor = Some(image);
    }

    /// Count one operation; true when the power goes during it.
    fn tick(&mut self) -> bool {
        match &mut self.countdown {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                *n == 0
            }
            None => false,
        }
    }
}

fn dead() -> io::Error {
    io::Error::other("the power is out")
}

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

/// A storage medium in memory that can lose power or fill up.
#[derive(Debug, Clone, Default)]
struct FaultDisk(Arc<Mutex<Disk>>);

impl FaultDisk {
    fn with_bytes(bytes: Vec<u8>) -> FaultDisk {
        FaultDisk(Arc::new(Mutex::new(Disk {
            durable: bytes.clone(),
            current: bytes,
            ..Disk::default()
        })))
    }

    fn arm(&self, ops: u64, rng: StdRng) {
        let mut d = self.0.lock().unwrap();
        d.countdown = Some(ops);
        d.rng = Some(rng);
    }

    fn survivor(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().survivor.clone()
    }
}

impl StorageBackend for FaultDisk {
    fn len(&self) -> Result<u64, io::Error> {
        let d = self.0.lock().unwrap();
        if d.survivor.is_some() {
            return Err(dead());
        }
        Ok(d.current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let d = self.0.lock().unwrap();
        if d.survivor.is_some() {
            return Err(dead());
        }
        let start = offset as usize;
        let end = start + out.len();
        if end > d.current.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&d.current[start..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut d = self.0.lock().unwrap();
        if d.survivor.is_some() {
            return Err(dead());
        }
        if d.full && len > d.current.len() as u64 {
            return Err(enospc());
        }
        if d.tick() {
            d.cut(None);
            return Err(dead());
        }
        d.current.resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut d = self.0.lock().unwrap();
        if d.survivor.is_some() {
            return Err(dead());
        }
        if d.tick() {
            d.cut(None);
            return Err(dead());
        }
        std::thread::sleep(d.sync_delay);
        d.durable = d.current.clone();
        d.unsynced.clear();
        d.syncs += 1;
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut d = self.0.lock().unwrap();
        if d.survivor.is_some() {
            return Err(dead());
        }
        if d.full {
            return Err(enospc());
        }
        if d.tick() {
            d.cut(Some((offset, data)));
            return Err(dead());
        }
        let end = offset as usize + data.len();
        if d.current.len() < end {
            d.current.resize(end, 0);
        }
        d.current[offset as usize..end].copy_from_slice(data);
        d.unsynced.push((offset, data.to_vec()));
        Ok(())
    }
}

/// One message as far as committed transactions say.
#[derive(Debug, Clone, PartialEq)]
struct Msg {
    id: String,
    status: MessageStatus,
    blob: bool,
    /// The event its `mark_sent` / `mark_failed` recorded.
    event: Option<String>,
}

/// What the committed transactions add up to.
#[derive(Debug, Default)]
struct Model {
    /// By idempotency key.
    msgs: BTreeMap<String, Msg>,
    events: BTreeSet<String>,
    sends_logged: usize,
}

/// A transaction of the kinds a 202 and webhook recording commit.
#[derive(Debug, Clone)]
enum Txn {
    Enqueue { key: String, blob: Option<Vec<u8>> },
    Sending { key: String, wa_id: String },
    Sent { key: String, event: Event },
    Failed { key: String, event: Event },
    Event { event: Event },
}

fn pick(model: &Model, rng: &mut StdRng, want: &[MessageStatus]) -> Option<String> {
    let keys: Vec<&String> = model
        .msgs
        .iter()
        .filter(|(_, m)| want.contains(&m.status))
        .map(|(k, _)| k)
        .collect();
    (!keys.is_empty()).then(|| keys[rng.random_range(0..keys.len())].clone())
}

fn update(m: &Msg, status: &str) -> wagate::events::MessageUpdate {
    wagate::events::MessageUpdate {
        id: m.id.clone(),
        wa_id: None,
        kind: "text".into(),
        to: "15550001111@s.whatsapp.net".into(),
        to_phone: None,
        to_lid: None,
        status: status.into(),
        reason: None,
        target: None,
    }
}

fn next_txn(model: &Model, rng: &mut StdRng, n: u64) -> Txn {
    loop {
        match rng.random_range(0..10) {
            0..=3 => {
                let blob = rng
                    .random_bool(0.3)
                    .then(|| vec![n as u8; rng.random_range(100..20_000)]);
                return Txn::Enqueue {
                    key: format!("k{n}"),
                    blob,
                };
            }
            4 | 5 => {
                if let Some(key) = pick(model, rng, &[MessageStatus::Queued]) {
                    return Txn::Sending {
                        key,
                        wa_id: format!("WA{n}"),
                    };
                }
            }
            6 | 7 => {
                if let Some(key) = pick(model, rng, &[MessageStatus::Sending]) {
                    let event = Event::new(
                        SESSION,
                        EventKind::MessageSent(update(&model.msgs[&key], "sent")),
                    );
                    return Txn::Sent { key, event };
                }
            }
            8 => {
                if let Some(key) =
                    pick(model, rng, &[MessageStatus::Queued, MessageStatus::Sending])
                {
                    let event = Event::new(
                        SESSION,
                        EventKind::MessageFailed(update(&model.msgs[&key], "failed")),
                    );
                    return Txn::Failed { key, event };
                }
            }
            _ => {
                return Txn::Event {
                    event: Event::new(
                        SESSION,
                        EventKind::SessionDisconnected {
                            attempts: n as u32,
                            reason: wagate::events::DisconnectReason::ConnectionLost,
                            message: None,
                        },
                    ),
                };
            }
        }
    }
}

fn run(store: &Store, model: &Model, txn: &Txn, now: i64) -> Result<Option<String>, StoreError> {
    match txn.clone() {
        Txn::Enqueue { key, blob } => store
            .write_blocking(move |t| {
                queue::enqueue(
                    t,
                    SESSION,
                    &NewMessage {
                        kind: "text".into(),
                        to: "15550001111@s.whatsapp.net".into(),
                        content: serde_json::json!({"text": key}),
                        blob: blob.clone(),
                        idempotency_key: Some(key.clone()),
                        now_ms: now,
                        to_phone: None,
                        to_lid: None,
                    },
                )
            })
            .map(|e| Some(e.record.id)),
        Txn::Sending { key, wa_id } => {
            let id = model.msgs[&key].id.clone();
            store
                .write_blocking(move |t| queue::mark_sending(t, SESSION, &id, &wa_id))
                .map(|_| None)
        }
        Txn::Sent { key, event } => {
            let id = model.msgs[&key].id.clone();
            store
                .write_blocking(move |t| {
                    queue::mark_sent(t, SESSION, &id, now)?;
                    pacing::log_send(t, SESSION, now)?;
                    outbox::record(t, event.clone())
                })
                .map(|_| None)
        }
        Txn::Failed { key, event } => {
            let id = model.msgs[&key].id.clone();
            store
                .write_blocking(move |t| {
                    queue::mark_failed(t, SESSION, &id, "no", now)?;
                    outbox::record(t, event.clone())
                })
                .map(|_| None)
        }
        Txn::Event { event } => store
            .write_blocking(move |t| outbox::record(t, event.clone()))
            .map(|_| None),
    }
}

/// Apply a transaction that committed (or, after a cut, was found whole) to the model.
fn apply(model: &mut Model, txn: &Txn, new_id: Option<String>) {
    match txn {
        Txn::Enqueue { key, blob } => {
            model.msgs.insert(
                key.clone(),
                Msg {
                    id: new_id.expect("an enqueue names its message"),
                    status: MessageStatus::Queued,
                    blob: blob.is_some(),
                    event: None,
                },
            );
        }
        Txn::Sending { key, .. } => {
            model.msgs.get_mut(key).unwrap().status = MessageStatus::Sending;
        }
        Txn::Sent { key, event } => {
            let m = model.msgs.get_mut(key).unwrap();
            m.status = MessageStatus::Sent;
            m.event = Some(event.id.clone());
            model.events.insert(event.id.clone());
            model.sends_logged += 1;
        }
        Txn::Failed { key, event } => {
            let m = model.msgs.get_mut(key).unwrap();
            m.status = MessageStatus::Failed;
            m.event = Some(event.id.clone());
            model.events.insert(event.id.clone());
        }
        Txn::Event { event } => {
            model.events.insert(event.id.clone());
        }
    }
}

/// After a reopen: was the transaction cut under way written? (One fact of it; [`check`]
/// then finds any part of it missing.) `Some(new id)` when it was.
fn landed(store: &Store, model: &Model, txn: &Txn) -> Option<Option<String>> {
    if let Txn::Enqueue { key, .. } = txn {
        let key = key.clone();
        let found = store
            .write_blocking(move |w| queue::by_idempotency_key(w, SESSION, &key))
            .unwrap();
        return found.map(|m| Some(m.id));
    }
    store
        .read_blocking(|t| {
            Ok(match txn {
                Txn::Enqueue { .. } => unreachable!(),
                Txn::Sending { key, .. } => {
                    let m = queue::get(t, SESSION, &model.msgs[key].id)?.unwrap();
                    (m.status == MessageStatus::Sending).then_some(None)
                }
                Txn::Sent { event, .. } | Txn::Failed { event, .. } | Txn::Event { event } => {
                    outbox::has_event(t, &event.id)?.then_some(None)
                }
            })
        })
        .unwrap()
}

/// The store agrees with the model, in every table the transactions touch.
fn check(store: &Store, model: &Model) -> Result<(), String> {
    store
        .read_blocking(|t| {
            let mut pending = BTreeSet::new();
            for (key, m) in &model.msgs {
                let got = queue::get(t, SESSION, &m.id)?.ok_or_else(|| {
                    StoreError::Invalid(format!("{key}: committed message {} is gone", m.id))
                })?;
                if got.status != m.status {
                    return Err(StoreError::Invalid(format!(
                        "{key}: status {:?}, committed {:?}",
                        got.status, m.status
                    )));
                }
                let blob = queue::blob(t, SESSION, &m.id)?.is_some();
                if blob != (m.blob && m.status.is_pending()) {
                    return Err(StoreError::Invalid(format!("{key}: media present {blob}")));
                }
                if m.status.is_pending() {
                    pending.insert(m.id.clone());
                }
                if let Some(e) = &m.event
                    && !outbox::has_event(t, e)?
                {
                    return Err(StoreError::Invalid(format!("{key}: its event {e} is gone")));
                }
            }
            let listed: BTreeSet<String> = queue::pending(t, SESSION, 1_000_000)?
                .into_iter()
                .map(|m| m.id)
                .collect();
            if listed != pending {
                return Err(StoreError::Invalid(format!(
                    "queue rows {} != pending messages {}",
                    listed.len(),
                    pending.len()
                )));
            }
            let depth = queue::depth(t, SESSION)?;
            if depth != pending.len() as u64 {
                return Err(StoreError::Invalid(format!(
                    "depth {depth} != {} pending",
                    pending.len()
                )));
            }
            for e in &model.events {
                if !outbox::has_event(t, e)? {
                    return Err(StoreError::Invalid(format!("committed event {e} is gone")));
                }
            }
            let seq = outbox::last_seq(t, SESSION)?;
            if seq != model.events.len() as u64 {
                return Err(StoreError::Invalid(format!(
                    "event seq {seq} != {} events",
                    model.events.len()
                )));
            }
            let sends = pacing::sends_since(t, SESSION, 0)?.len();
            if sends != model.sends_logged {
                return Err(StoreError::Invalid(format!(
                    "send log {sends} != {} sends",
                    model.sends_logged
                )));
            }
            Ok(())
        })
        .map_err(|e| e.to_string())
}

#[test]
fn power_cuts_keep_every_committed_transaction_and_tear_none() {
    let cuts: u32 = std::env::var("POWER_CUTS")
        .ok()
        .map(|v| v.parse().expect("POWER_CUTS: a number"))
        .unwrap_or(60);
    let seed: u64 = std::env::var("POWER_SEED")
        .ok()
        .map(|v| v.parse().expect("POWER_SEED: a number"))
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("power cuts: POWER_SEED={seed} POWER_CUTS={cuts}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut disk = FaultDisk::default();
    let mut store = Store::open_with_backend(disk.clone(), 1 << 20, "power-cut").unwrap();
    let mut model = Model::default();
    let (mut committed, mut cut_applied, mut cut_dropped, mut n) = (0u64, 0u64, 0u64, 0u64);
    let (mut syncs, mut torn) = (0u64, 0u64);
    for cut in 0..cuts {
        let ops = rng.random_range(1..400u64);
        disk.arm(ops, StdRng::seed_from_u64(rng.random()));
        // Transactions until the power goes under one.
        let in_flight = loop {
            n += 1;
            let txn = next_txn(&model, &mut rng, n);
            match run(&store, &model, &txn, n as i64) {
                Ok(id) => {
                    apply(&mut model, &txn, id);
                    committed += 1;
                }
                Err(_) => break txn,
            }
        };
        let image = disk.survivor().expect("the power went");
        {
            let d = disk.0.lock().unwrap();
            syncs += d.syncs;
            torn += d.torn_bytes;
        }
        store.close();
        drop(store);

        // The surviving bytes, opened again.
        disk = FaultDisk::with_bytes(image);
        store = Store::open_with_backend(disk.clone(), 1 << 20, "power-cut").unwrap_or_else(|e| {
            panic!("seed {seed}, cut {cut}: the file does not open after the cut: {e}")
        });
        match landed(&store, &model, &in_flight) {
            Some(id) => {
                apply(&mut model, &in_flight, id);
                cut_applied += 1;
            }
            None => cut_dropped += 1,
        }
        if let Err(e) = check(&store, &model) {
            panic!("seed {seed}, cut {cut} (under {in_flight:?}): {e}");
        }
    }
    let size = disk.0.lock().unwrap().current.len();
    eprintln!(
        "power cut figures: cuts {cuts}, committed txns {committed} (all present after every cut), \
         txn under way at the cut: whole {cut_applied}, absent {cut_dropped}, half-applied 0; \
         messages {}, events {}, syncs {syncs}, torn bytes written {torn}, file {size} bytes",
        model.msgs.len(),
        model.events.len()
    );
}

#[test]
fn a_full_disk_is_a_typed_error_answered_507() {
    let disk = FaultDisk::default();
    let store = Store::open_with_backend(disk.clone(), 1 << 20, "full").unwrap();
    let enqueue = |key: &str| {
        let key = key.to_string();
        store.write_blocking(move |t| {
            queue::enqueue(
                t,
                SESSION,
                &NewMessage {
                    kind: "text".into(),
                    to: "15550001111@s.whatsapp.net".into(),
                    content: serde_json::json!({"text": "x"}),
                    blob: Some(vec![7; 50_000]),
                    idempotency_key: Some(key.clone()),
                    now_ms: 1,
                    to_phone: None,
                    to_lid: None,
                },
            )
        })
    };
    enqueue("before").unwrap();
    disk.0.lock().unwrap().full = true;
    let e = enqueue("full").unwrap_err();
    assert!(
        matches!(e, StoreError::NoSpace(_)),
        "a full disk is StoreError::NoSpace: {e:?}"
    );
    let api = ApiError::from(e);
    assert_eq!(api.status.as_u16(), 507);
    assert_eq!(api.code, "insufficient_storage");
}

fn text(n: u64) -> NewMessage {
    NewMessage {
        kind: "text".into(),
        to: "15550001111@s.whatsapp.net".into(),
        content: serde_json::json!({"text": format!("m{n}")}),
        blob: None,
        idempotency_key: None,
        now_ms: n as i64,
        to_phone: None,
        to_lid: None,
    }
}

#[test]
fn a_lone_write_commits_at_once_with_one_fsync() {
    let disk = FaultDisk::default();
    let store = Store::open_with_backend(disk.clone(), 1 << 20, "lone").unwrap();
    let before = disk.0.lock().unwrap().syncs;
    for n in 0..20 {
        store
            .write_blocking(move |t| queue::enqueue(t, SESSION, &text(n)))
            .unwrap();
    }
    let syncs = disk.0.lock().unwrap().syncs - before;
    // redb syncs twice while the file grows; one write never waits for another fsync.
    assert!(
        (20..=24).contains(&syncs),
        "20 writes one after another: one fsync each, found {syncs}"
    );
    assert_eq!(
        store
            .commit_stats()
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed),
        20
    );
}

#[test]
fn group_commit_shares_fsyncs_and_power_cuts_keep_every_acknowledged_write() {
    let cuts: u32 = std::env::var("POWER_CUTS")
        .ok()
        .map(|v| v.parse::<u32>().expect("POWER_CUTS: a number") / 3)
        .unwrap_or(20)
        .max(1);
    let seed: u64 = std::env::var("POWER_SEED")
        .ok()
        .map(|v| v.parse().expect("POWER_SEED: a number"))
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("group commit power cuts: POWER_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut disk = FaultDisk::default();
    disk.0.lock().unwrap().sync_delay = std::time::Duration::from_millis(2);
    let mut store = Store::open_with_backend(disk.clone(), 1 << 20, "group").unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    let (mut writes, mut syncs, mut failed) = (0u64, 0u64, 0u64);
    let next = std::sync::atomic::AtomicU64::new(0);
    for cut in 0..cuts {
        let syncs_before = store
            .commit_stats()
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed);
        disk.arm(
            rng.random_range(20..300u64),
            StdRng::seed_from_u64(rng.random()),
        );
        // Eight writers until the power goes; each notes the writes that returned Ok.
        let oks: Vec<(Vec<String>, u64)> = std::thread::scope(|s| {
            let hands: Vec<_> = (0..8)
                .map(|_| {
                    let (store, next) = (&store, &next);
                    s.spawn(move || {
                        let mut ok = Vec::new();
                        loop {
                            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            match store
                                .write_blocking(move |t| queue::enqueue(t, SESSION, &text(n)))
                            {
                                Ok(e) => ok.push(e.record.id),
                                Err(_) => return (ok, 1),
                            }
                        }
                    })
                })
                .collect();
            hands.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (ok, f) in oks {
            writes += ok.len() as u64;
            failed += f;
            acknowledged.extend(ok);
        }
        syncs += store
            .commit_stats()
            .syncs
            .load(std::sync::atomic::Ordering::Relaxed)
            - syncs_before;
        let image = disk.survivor().expect("the power went");
        store.close();
        drop(store);
        disk = FaultDisk::with_bytes(image);
        disk.0.lock().unwrap().sync_delay = std::time::Duration::from_millis(2);
        store = Store::open_with_backend(disk.clone(), 1 << 20, "group").unwrap_or_else(|e| {
            panic!("seed {seed}, cut {cut}: the file does not open after the cut: {e}")
        });
        let ids = acknowledged.clone();
        let missing: Vec<String> = store
            .read_blocking(move |t| {
                let mut missing = Vec::new();
                for id in ids {
                    if queue::get(t, SESSION, &id)?.is_none() {
                        missing.push(id);
                    }
                }
                Ok(missing)
            })
            .unwrap();
        assert!(
            missing.is_empty(),
            "seed {seed}, cut {cut}: acknowledged writes lost: {missing:?}"
        );
    }
    eprintln!(
        "group commit figures: cuts {cuts}, writes acknowledged {writes} (all present after \
         every cut), writes failed by a cut {failed}, durable commits {syncs}"
    );
    assert!(
        syncs * 2 <= writes,
        "eight writers on a 2 ms fsync share fsyncs: {syncs} durable commits for {writes} writes"
    );
}

/// A write whose closure fails (or panics) in a group leaves none of its work, and the other
/// writes of that group are run again and kept: the group shares one transaction, so its
/// writes cannot be committed around a half-done one.
#[test]
fn a_failing_write_rolls_its_group_back_and_the_others_run_again() {
    for panics in [false, true] {
        let disk = FaultDisk::default();
        disk.0.lock().unwrap().sync_delay = std::time::Duration::from_millis(5);
        let store = Store::open_with_backend(disk.clone(), 1 << 20, "rollback").unwrap();
        let first_runs = std::sync::atomic::AtomicU32::new(0);
        let (inside_tx, inside_rx) = std::sync::mpsc::channel::<()>();
        let ids: Vec<Option<String>> = std::thread::scope(|s| {
            let (store, first_runs) = (&store, &first_runs);
            // The first writer holds the group open until the others wait at its door.
            let first = s.spawn(move || {
                store
                    .write_blocking(|t| {
                        let runs = first_runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let e = queue::enqueue(t, SESSION, &text(0))?;
                        if runs == 0 {
                            inside_tx.send(()).unwrap();
                            std::thread::sleep(std::time::Duration::from_millis(200));
                        }
                        Ok(e.record.id)
                    })
                    .ok()
            });
            inside_rx.recv().unwrap();
            let failing = s.spawn(move || {
                store
                    .write_blocking(|t| {
                        queue::enqueue(t, SESSION, &text(99))?;
                        if panics {
                            panic!("a bug in a write closure");
                        }
                        Err::<String, _>(StoreError::Invalid("refused after writing".into()))
                    })
                    .ok()
            });
            let others: Vec<_> = (1..6)
                .map(|n| {
                    s.spawn(move || {
                        store
                            .write_blocking(move |t| {
                                Ok(queue::enqueue(t, SESSION, &text(n))?.record.id)
                            })
                            .ok()
                    })
                })
                .collect();
            let mut ids = vec![first.join().unwrap()];
            assert_eq!(
                failing.join().ok().flatten(),
                None,
                "the failing write fails"
            );
            ids.extend(others.into_iter().map(|h| h.join().unwrap()));
            ids
        });
        assert!(
            ids.iter().all(Option::is_some),
            "panics {panics}: every other write succeeds: {ids:?}"
        );
        assert_eq!(
            first_runs.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "panics {panics}: the first write shared the failing one's group and ran again"
        );
        assert_eq!(
            store
                .commit_stats()
                .rollbacks
                .load(std::sync::atomic::Ordering::Relaxed),
            1,
            "panics {panics}: one group rolled back"
        );
        let kept: Vec<String> = store
            .read_blocking(|t| {
                Ok(queue::pending(t, SESSION, 100)?
                    .into_iter()
                    .map(|m| m.content["text"].as_str().unwrap_or("").to_string())
                    .collect())
            })
            .unwrap();
        let mut kept = kept;
        kept.sort();
        assert_eq!(
            kept,
            ["m0", "m1", "m2", "m3", "m4", "m5"],
            "panics {panics}: the failing write left nothing, the others are kept once"
        );
        // The store goes on working.
        store
            .write_blocking(|t| queue::enqueue(t, SESSION, &text(7)))
            .unwrap();
    }
}
