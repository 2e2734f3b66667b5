//! Storage cost: what each message costs the store, on a normal disk and on a slow one (an SD
//! card stands in as a delay added to every `sync_data`).
//!
//! The store runs on a redb storage backend that counts fsyncs and bytes written to the file
//! (a real file in a temporary directory) and can add that delay. The workloads write what
//! wagate's rooms write, through the library's own functions:
//! - **send**: `POST /api/sessions/{sid}/messages/text` over real HTTP (the accept), then the
//!   sender's records (`sending` with the WhatsApp id, `sent` with its send log and
//!   `message.sent`), then the delivery and read receipts with their events;
//! - **receive**: an inbound message's event and record in one transaction (the durability
//!   hook's write);
//! - **churn**: delivery and read receipts, with their events, for messages already sent;
//!
//! and in all three the real webhook forwarder posts every event to a local receiver and
//! records each attempt. Not included: whatsapp-rust's own Signal state writes.
//!
//! First, on each disk: `idle accept`, one accept at a time with the store idle between them
//! (the single-request latency), and `accept only` at 200 requests/s (the accept's own fsyncs).
//! Then each workload runs at 1, 50 and 200 messages/s, open loop, spread over 16 client threads,
//! and ends when every step and every webhook delivery is done. Then `sustained` is the
//! accepted (send) or received (receive) messages per second from 16 clients as fast as they
//! go, and `file` the size of a fresh store after 10,000 messages through the send path (on
//! the normal disk).
//!
//! `cargo bench --bench storage_cost` prints one table; `bench/storage-cost.sh` runs it on two
//! builds (before and after a change) in one run and prints both. `STORAGE_BUILD` labels the
//! rows, `STORAGE_SLOW_MS` sets the slow disk's delay (default 10 ms), `STORAGE_QUICK=1`
//! runs fewer messages (a smoke run).

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::StorageBackend;
use redb::backends::FileBackend;
use serde_json::json;
use wagate::auth::{self, KeySpec, Scope, Setup};
use wagate::clock::Clock;
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, Event, EventKind, InboundContent, MessageReceived, Notice};
use wagate::net::api::{self, ApiState};
use wagate::net::webhook::{Settings, Webhooks};
use wagate::store::queue::{self, MessageStatus, NewMessage};
use wagate::store::{Store, inbound, outbox, pacing};

const SESSION: &str = "bench";
const CLIENTS: usize = 16;
const RATES: [u32; 3] = [1, 50, 200];

#[derive(Debug, Default)]
struct Counts {
    syncs: AtomicU64,
    bytes: AtomicU64,
}

/// A file, counted, with `delay` added to every fsync.
#[derive(Debug)]
struct Disk {
    file: FileBackend,
    counts: Arc<Counts>,
    delay: Duration,
}

impl StorageBackend for Disk {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        std::thread::sleep(self.delay);
        self.counts.syncs.fetch_add(1, Ordering::Relaxed);
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.counts
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.file.write(offset, data)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// One store with the API, a session, a key and the webhook forwarder to a local receiver.
struct Rig {
    _rt: tokio::runtime::Runtime,
    store: Store,
    bus: Bus,
    counts: Arc<Counts>,
    file: std::path::PathBuf,
    accept_url: String,
    key: String,
    _webhooks: Webhooks,
    _dir: tempfile::TempDir,
}

fn receiver() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().fallback(|| async { "ok" });
            axum::serve(l, app).await.expect("serve");
        });
    });
    format!("http://{}/hook", rx.recv().expect("addr"))
}

fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    format!("ws://127.0.0.1:{port}/ws/chat")
}

impl Rig {
    fn new(delay: Duration, hook: &str) -> Rig {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("wagate.redb");
        let counts = Arc::new(Counts::default());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file)
            .expect("file");
        let disk = Disk {
            file: FileBackend::new(f).expect("backend"),
            counts: counts.clone(),
            delay,
        };
        let store = Store::open_with_backend(disk, 4 << 20, "bench").expect("store");
        let bus = Bus::default();
        let (addr, key, webhooks) = rt.block_on(async {
            let cfg = EngineConfig {
                ws_url: dead_url(),
                ..EngineConfig::default()
            };
            let mgr = SessionManager::open(store.clone(), bus.clone(), cfg, false)
                .await
                .expect("manager");
            mgr.create(SESSION, false).await.expect("session");
            let key = auth::create_key(
                &store,
                KeySpec {
                    scopes: vec![Scope::MessagesSend],
                    sessions: None,
                    name: Some("bench".into()),
                },
            )
            .await
            .expect("key")
            .token;
            let ep = outbox::Endpoint {
                id: outbox::new_endpoint_id(),
                url: hook.to_string(),
                events: vec!["*".into()],
                sessions: None,
                enabled: true,
                description: None,
                secret: wagate::net::webhook::new_secret(),
                previous_secret: None,
                previous_until: None,
                disabled_reason: None,
                created_at: 0,
                updated_at: 0,
            };
            store
                .write(move |t| outbox::insert_endpoint(t, &ep))
                .await
                .expect("endpoint");
            let webhooks =
                Webhooks::spawn(store.clone(), &bus, Settings::default(), Clock::system());
            let state = ApiState::new(mgr, Setup::closed(), 1 << 20);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr: SocketAddr = l.local_addr().expect("addr");
            tokio::spawn(api::serve(l, state));
            (addr, key, webhooks)
        });
        Rig {
            _rt: rt,
            store,
            bus,
            counts,
            file,
            accept_url: format!("http://{addr}/api/sessions/{SESSION}/messages/text"),
            key,
            _webhooks: webhooks,
            _dir: dir,
        }
    }

    fn write<T: Send + 'static>(
        &self,
        f: impl FnMut(&redb::WriteTransaction) -> wagate::store::Result<T> + Send + 'static,
    ) -> T {
        self.store.write_blocking(f).expect("write")
    }

    /// Tell the forwarder of an event just written, as the engine does.
    fn publish(&self, e: Option<Event>) {
        if let Some(e) = e {
            self.bus.publish(Notice::Event(e));
        }
    }

    fn accept(&self, agent: &ureq::Agent, n: usize) -> String {
        let body = json!({"to": format!("4477009{:05}", n % 100_000), "text": format!("m{n}")});
        let mut resp = agent
            .post(&self.accept_url)
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .expect("request");
        assert_eq!(resp.status().as_u16(), 202, "accept");
        let text = resp.body_mut().read_to_string().expect("body");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["id"].as_str().expect("id").to_string()
    }

    fn sending_and_sent(&self, id: &str, wa_id: &str) {
        let (i, w) = (id.to_string(), wa_id.to_string());
        self.write(move |t| queue::mark_sending(t, SESSION, &i, &w).map(|_| ()));
        let i = id.to_string();
        let e = self.write(move |t| {
            let at = now_ms();
            let Some(sent) = queue::mark_sent(t, SESSION, &i, at)? else {
                return Ok(None);
            };
            pacing::log_send(t, SESSION, at)?;
            outbox::record(
                t,
                Event::new(SESSION, EventKind::MessageSent(sent.update())),
            )
        });
        self.publish(e);
    }

    fn receipt(&self, wa_id: &str, status: MessageStatus) {
        let w = wa_id.to_string();
        let e = self.write(move |t| {
            let r = queue::apply_receipt(t, SESSION, &w, status, now_ms())?;
            let Some(rec) = r.advanced else {
                return Ok(None);
            };
            let kind = if status == MessageStatus::Read {
                EventKind::MessageRead(rec.update())
            } else {
                EventKind::MessageDelivered(rec.update())
            };
            outbox::record(t, Event::new(SESSION, kind))
        });
        self.publish(e);
    }

    fn receive(&self, n: usize) {
        let wa_id = format!("3EB0{n:016X}");
        let sender = format!("4477008{:05}@s.whatsapp.net", n % 100_000);
        let sent_at = now_ms();
        let id = format!(
            "msg_{}",
            outbox::inbound_ulid(SESSION, &sender, &sender, &wa_id, sent_at)
        );
        let ev = Event {
            id: format!("evt_{}", ulid::Ulid::new()),
            ..Event::new(
                SESSION,
                EventKind::MessageReceived(Box::new(MessageReceived {
                    id: id.clone(),
                    wa_id: wa_id.clone(),
                    chat: sender.clone(),
                    from: sender.clone(),
                    from_phone: Some(sender.clone()),
                    from_lid: Some(format!("{}@lid", 100_000_000_000u64 + n as u64)),
                    push_name: Some("Customer".into()),
                    sent_at,
                    text: Some(format!("inbound message number {n}, a line of text")),
                    group: None,
                    reply_to: None,
                    mentions: Vec::new(),
                    content: Box::new(InboundContent::Text { link_preview: None }),
                })),
            )
        };
        let rec = inbound::InboundRecord {
            id,
            chat: sender.clone(),
            sender,
            wa_id,
            kind: "text".into(),
            sent_at,
            mimetype: None,
            file_name: None,
            size: None,
            proto: None,
            text: Some(format!("inbound message number {n}, a line of text")),
            ..Default::default()
        };
        let e = self.write(move |t| {
            let Some(e) = outbox::record(t, ev.clone())? else {
                return Ok(None);
            };
            inbound::put(t, SESSION, &rec)?;
            Ok(Some(e))
        });
        self.publish(e);
    }

    /// Messages already sent, for the churn: written in one transaction (not measured).
    fn sent_messages(&self, first: usize, n: usize) -> Vec<String> {
        self.write(move |t| {
            let mut out = Vec::with_capacity(n);
            for i in first..first + n {
                let new = NewMessage {
                    kind: "text".into(),
                    to: format!("4477007{:05}@s.whatsapp.net", i % 100_000),
                    content: json!({"to": "447700700000", "text": format!("c{i}")}),
                    blob: None,
                    idempotency_key: None,
                    now_ms: now_ms(),
                    to_phone: None,
                    to_lid: None,
                };
                let rec = queue::enqueue(t, SESSION, Message::of(&new))?.record;
                let w = wa_of(&rec.id);
                queue::mark_sending(t, SESSION, &rec.id, &w)?;
                queue::mark_sent(t, SESSION, &rec.id, now_ms())?;
                out.push(w);
            }
            Ok(out)
        })
    }

    /// Wait until the forwarder has delivered every event.
    fn drained(&self) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let pending = self
                .store
                .read_blocking(outbox::pending_count)
                .expect("read");
            if pending == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("webhook deliveries did not drain");
    }

    fn snapshot(&self) -> (u64, u64) {
        (
            self.counts.syncs.load(Ordering::Relaxed),
            self.counts.bytes.load(Ordering::Relaxed),
        )
    }
}

/// The WhatsApp id the bench gives a message.
fn wa_of(id: &str) -> String {
    format!("WA{}", id.trim_start_matches("msg_"))
}

#[derive(Clone, Copy, PartialEq)]
enum Flow {
    /// The accept alone (`POST .../messages/text`, 202).
    Accept,
    Send,
    Receive,
    Churn,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flow::Accept => "accept",
            Flow::Send => "send",
            Flow::Receive => "receive",
            Flow::Churn => "churn",
        })
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// One message's steps; returns the first step's latency in µs.
fn one(rig: &Rig, agent: &ureq::Agent, path: Flow, n: usize, churn: &[String]) -> u64 {
    let t = Instant::now();
    match path {
        Flow::Accept => {
            rig.accept(agent, n);
            t.elapsed().as_micros() as u64
        }
        Flow::Send => {
            let id = rig.accept(agent, n);
            let first = t.elapsed().as_micros() as u64;
            let w = wa_of(&id);
            rig.sending_and_sent(&id, &w);
            rig.receipt(&w, MessageStatus::Delivered);
            rig.receipt(&w, MessageStatus::Read);
            first
        }
        Flow::Receive => {
            rig.receive(n);
            t.elapsed().as_micros() as u64
        }
        Flow::Churn => {
            let w = &churn[n % churn.len()];
            rig.receipt(w, MessageStatus::Delivered);
            let first = t.elapsed().as_micros() as u64;
            rig.receipt(w, MessageStatus::Read);
            first
        }
    }
}

struct Run {
    p50: u64,
    p99: u64,
    per_s: f64,
    syncs: f64,
    bytes: f64,
}

/// `n` messages at `rate` (open loop: message i is due at start + i/rate, on client i % 16;
/// `rate` 0: as fast as the clients go), until every step and delivery is done.
fn run(rig: &Rig, path: Flow, rate: u32, n: usize, base: usize, churn: &[String]) -> Run {
    let (s0, b0) = rig.snapshot();
    let lat = Mutex::new(Vec::with_capacity(n));
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            let lat = &lat;
            s.spawn(move || {
                let agent = agent();
                let mut mine = Vec::new();
                for i in (c..n).step_by(CLIENTS) {
                    if rate > 0 {
                        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
                        if let Some(w) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(w);
                        }
                    }
                    mine.push(one(rig, &agent, path, base + i, churn));
                }
                lat.lock().expect("lock").extend(mine);
            });
        }
    });
    rig.drained();
    let took = start.elapsed().as_secs_f64();
    let (s1, b1) = rig.snapshot();
    let mut lat = lat.into_inner().expect("lock");
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    Run {
        p50: pct(0.5),
        p99: pct(0.99),
        per_s: n as f64 / took,
        syncs: (s1 - s0) as f64 / n as f64,
        bytes: (b1 - b0) as f64 / n as f64,
    }
}

/// First steps only (the accept, the inbound write), 16 clients as fast as they go.
fn sustained(rig: &Rig, path: Flow, n: usize, base: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for c in 0..CLIENTS {
            s.spawn(move || {
                let agent = agent();
                for i in (c..n).step_by(CLIENTS) {
                    match path {
                        Flow::Receive => rig.receive(base + i),
                        _ => {
                            rig.accept(&agent, base + i);
                        }
                    }
                }
            });
        }
    });
    n as f64 / start.elapsed().as_secs_f64()
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn main() {
    let build = std::env::var("STORAGE_BUILD").unwrap_or_else(|_| "this".into());
    let slow_ms: u64 = std::env::var("STORAGE_SLOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let quick = std::env::var("STORAGE_QUICK").is_ok_and(|v| v == "1");
    let count = |rate: u32| -> usize {
        let n = match rate {
            1 => 8,
            50 => 250,
            _ => 600,
        };
        if quick { n / 4 } else { n }
    };
    let hook = receiver();
    println!(
        "storage cost per message, {CLIENTS} clients, build `{build}`, slow disk +{slow_ms} ms \
         per fsync ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| build | disk | path | rate/s | first step p50 | p99 | msgs/s | fsyncs/msg | bytes/msg |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for (disk, delay) in [("normal", 0), ("slow", slow_ms)] {
        let rig = Rig::new(Duration::from_millis(delay), &hook);
        let mut base = 0;
        let churn = rig.sent_messages(1_000_000, 2_000);
        // One accept at a time on an idle store (20 ms apart): the single-request latency.
        let agent = agent();
        let mut idle = Vec::new();
        for i in 0..if quick { 25 } else { 100 } {
            std::thread::sleep(Duration::from_millis(20));
            idle.push(one(&rig, &agent, Flow::Accept, base + i, &churn));
            rig.drained();
        }
        base += idle.len();
        idle.sort_unstable();
        summary.push(format!(
            "| {build} | {disk} | idle accept p50 ({} alone, 20 ms apart) | {:.2} ms |",
            idle.len(),
            idle[idle.len() / 2] as f64 / 1000.0
        ));
        let n = count(200) * 2;
        let r = run(&rig, Flow::Accept, 200, n, base, &churn);
        base += n;
        println!(
            "| {build} | {disk} | accept only | 200 | {:.1} ms | {:.1} ms | {:.0} | {:.2} | {:.0} |",
            r.p50 as f64 / 1000.0,
            r.p99 as f64 / 1000.0,
            r.per_s,
            r.syncs,
            r.bytes
        );
        for path in [Flow::Send, Flow::Receive, Flow::Churn] {
            for rate in RATES {
                let n = count(rate);
                let r = run(&rig, path, rate, n, base, &churn);
                base += n;
                println!(
                    "| {build} | {disk} | {path} | {rate} | {:.1} ms | {:.1} ms | {:.0} | {:.2} | {:.0} |",
                    r.p50 as f64 / 1000.0,
                    r.p99 as f64 / 1000.0,
                    r.per_s,
                    r.syncs,
                    r.bytes
                );
            }
        }
        let n = if quick { 250 } else { 1_000 };
        for path in [Flow::Accept, Flow::Receive] {
            let per_s = sustained(&rig, path, n, base);
            base += n;
            summary.push(format!(
                "| {build} | {disk} | sustained {path} ({n} messages, first step only) | {per_s:.0}/s |"
            ));
        }
        rig.drained();
        drop(rig);
    }
    let n = if quick { 1_000 } else { 10_000 };
    let rig = Rig::new(Duration::ZERO, &hook);
    let t = Instant::now();
    let r = run(&rig, Flow::Send, 0, n, 0, &[]);
    summary.push(format!(
        "| {build} | normal | file after {n} messages (send path) | {} KiB, {:.0} msgs/s, {:.1} s |",
        file_size(&rig.file) / 1024,
        r.per_s,
        t.elapsed().as_secs_f64()
    ));
    drop(rig);
    println!();
    println!("| build | disk | measure | value |");
    println!("|---|---|---|---:|");
    for line in summary {
        println!("{line}");
    }
}

/// The queue's `enqueue` took its message by value before group commit and by reference since
/// (a closure may run twice): the bench builds on both sides of that change.
trait Message<'a> {
    fn of(m: &'a NewMessage) -> Self;
}

impl<'a> Message<'a> for NewMessage {
    fn of(m: &'a NewMessage) -> Self {
        m.clone()
    }
}

impl<'a> Message<'a> for &'a NewMessage {
    fn of(m: &'a NewMessage) -> Self {
        m
    }
}
