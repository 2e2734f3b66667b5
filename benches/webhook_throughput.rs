//! Webhook delivery throughput and latency: signed, durable deliveries (every attempt read
//! from and recorded in redb, HMAC-SHA256 signed twice) from the real forwarder to a local
//! receiver, beside a raw loop of unsigned POSTs of the same body to the same receiver in the
//! same run (the floor: HTTP alone). Event-to-delivery latency is measured from the commit of
//! the event (as the engine writes it) to its arrival at the receiver, at a paced rate.
//!
//! `cargo bench --bench webhook_throughput` prints a table.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use wagate::clock::Clock;
use wagate::events::{Bus, Event, EventKind, Notice};
use wagate::net::webhook::{Settings, Webhooks};
use wagate::store::{Store, outbox};

const BURST: usize = 1000;
const PACED: usize = 400;
const PACED_RATE: u32 = 50;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver on its own runtime: answers 200 at once, notes when each event id arrived.
fn receiver(arrivals: Arrivals) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let app = axum::Router::new().fallback(move |_h: HeaderMap, body: Bytes| {
                let arrivals = arrivals.clone();
                async move {
                    let now = Instant::now();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
                        && let Some(id) = v["id"].as_str()
                    {
                        arrivals.lock().expect("lock").insert(id.to_string(), now);
                    }
                    "ok"
                }
            });
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{}/hook", rx.recv().expect("addr"))
}

fn event(i: usize) -> Event {
    Event::new(
        "bench",
        EventKind::SessionDisconnected {
            attempts: i as u32,
            reason: wagate::events::DisconnectReason::ConnectionLost,
            message: None,
        },
    )
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Unsigned POSTs of an event body, one after another (as one endpoint's worker posts).
fn raw_loop(url: &str) -> f64 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = serde_json::to_vec(&event(0)).expect("json");
    let t = Instant::now();
    for _ in 0..BURST {
        let r = agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
    }
    BURST as f64 / t.elapsed().as_secs_f64()
}

fn wait_for(arrivals: &Arrivals, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrivals.lock().expect("lock").len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn main() {
    let arrivals: Arrivals = Arc::default();
    let url = receiver(arrivals.clone());
    // The floor, measured before and after the forwarder's runs (the better one counts).
    let mut raw_rate = raw_loop(&url);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("bench.redb"), 4 << 20).expect("store");
    let bus = Bus::default();
    let ep = outbox::Endpoint {
        id: outbox::new_endpoint_id(),
        url: url.clone(),
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
        .write_blocking(|t| outbox::insert_endpoint(t, &ep))
        .expect("endpoint");

    // Backlog: events committed first (one transaction each, as the engine writes them),
    // then the forwarder starts and drains them.
    let t = Instant::now();
    for i in 0..BURST {
        store
            .write_blocking(|t| outbox::record(t, event(i)))
            .expect("record")
            .expect("new");
    }
    let written = t.elapsed();
    let t = Instant::now();
    let _wh = rt.block_on(async {
        Webhooks::spawn(store.clone(), &bus, Settings::default(), Clock::system())
    });
    wait_for(&arrivals, BURST);
    let drain_rate = BURST as f64 / t.elapsed().as_secs_f64();
    raw_rate = raw_rate.max(raw_loop(&url));

    // Paced: event-to-delivery latency, from the event's commit to its arrival.
    arrivals.lock().expect("lock").clear();
    let gap = Duration::from_secs_f64(1.0 / f64::from(PACED_RATE));
    let start = Instant::now();
    let mut committed = Vec::with_capacity(PACED);
    for i in 0..PACED {
        let due = start + gap * i as u32;
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        let e = store
            .write_blocking(|t| outbox::record(t, event(i)))
            .expect("record")
            .expect("new");
        committed.push((e.id.clone(), Instant::now()));
        bus.publish(Notice::Event(e));
    }
    wait_for(&arrivals, PACED);
    let got = arrivals.lock().expect("lock").clone();
    let mut lat: Vec<u64> = committed
        .iter()
        .filter_map(|(id, at)| {
            got.get(id)
                .map(|a| a.saturating_duration_since(*at).as_micros() as u64)
        })
        .collect();
    lat.sort_unstable();
    let commits = store.commit_stats();
    let n = commits
        .commits
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(1);
    let commit_us = commits
        .commit_micros
        .load(std::sync::atomic::Ordering::Relaxed)
        / n;

    println!("webhook delivery, one endpoint, local receiver ({BURST} events)");
    println!("{:<46} {:>10}", "", "per second");
    println!(
        "{:<46} {:>10.0}",
        "raw unsigned POST loop (floor)", raw_rate
    );
    println!(
        "{:<46} {:>10.0}",
        "signed, durable deliveries (backlog drain)", drain_rate
    );
    println!("{:<46} {:>9.2}x", "wagate / floor", drain_rate / raw_rate);
    println!(
        "(writing the {BURST} events took {:.0} ms, one commit each; mean commit {commit_us} µs)",
        written.as_secs_f64() * 1000.0
    );
    println!();
    println!(
        "event-to-delivery at {PACED_RATE} events/s ({} of {PACED} arrived)",
        lat.len()
    );
    if let Some(max) = lat.last() {
        println!(
            "p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
            pct(&lat, 0.5) as f64 / 1000.0,
            pct(&lat, 0.99) as f64 / 1000.0,
            *max as f64 / 1000.0
        );
    }
}
