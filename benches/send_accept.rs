//! Send-accept latency: `POST /api/sessions/{sid}/messages/text` answered 202 (the message
//! durable in redb), at fixed request rates, beside a minimal axum handler on the same
//! machine in the same run (the floor: HTTP and JSON, no auth, no store).
//!
//! `cargo bench --bench send_accept` prints a table. WhatsApp is a closed local port, so the
//! queued messages stay queued: this measures acceptance, not delivery.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::routing::post;
use serde_json::json;
use wagate::auth::{self, KeySpec, Scope, Setup};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::Bus;
use wagate::net::api::{self, ApiState};
use wagate::store::Store;

const RATES: &[u32] = &[20, 100, 400];
const REQUESTS: usize = 600;

fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    format!("ws://127.0.0.1:{port}/ws/chat")
}

/// One request per `1/rate` seconds (open loop, paced from the start time so a slow answer
/// does not lower the offered rate below what the client can send); latencies in µs.
fn run(url: &str, key: Option<&str>, rate: u32) -> Vec<u64> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let body = json!({"to": "447700900123", "text": "benchmark"}).to_string();
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut out = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let due = start + gap * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        let mut req = agent.post(url).header("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        let resp = req.send(body.as_bytes()).expect("request");
        assert_eq!(resp.status().as_u16(), 202, "{url}");
        out.push(t.elapsed().as_micros() as u64);
    }
    out
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (wagate_addr, floor_addr, key) = rt.block_on(async {
        let store = Store::open(&dir.path().join("wagate.redb"), 4 << 20).expect("store");
        let cfg = EngineConfig {
            ws_url: dead_url(),
            ..EngineConfig::default()
        };
        let mgr = SessionManager::open(store.clone(), Bus::default(), cfg, false)
            .await
            .expect("manager");
        mgr.create("bench", false).await.expect("session");
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
        let state = ApiState::new(mgr, Setup::closed(), 1 << 20);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let wagate_addr: SocketAddr = l.local_addr().expect("addr");
        tokio::spawn(api::serve(l, state));

        let floor = axum::Router::new().route(
            "/",
            post(|Json(_): Json<serde_json::Value>| async {
                (
                    axum::http::StatusCode::ACCEPTED,
                    Json(json!({"id": "msg_x", "status": "queued"})),
                )
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let floor_addr: SocketAddr = l.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(l, floor).await });
        (wagate_addr, floor_addr, key)
    });
    let wagate_url = format!("http://{wagate_addr}/api/sessions/bench/messages/text");
    let floor_url = format!("http://{floor_addr}/");

    println!(
        "send-accept latency, {REQUESTS} requests per rate, one client, loopback ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| rate/s | wagate p50 | wagate p99 | axum floor p50 | axum floor p99 | p50 ratio |");
    println!("|-------:|-----------:|-----------:|---------------:|---------------:|----------:|");
    for &rate in RATES {
        let mut w = run(&wagate_url, Some(&key), rate);
        let mut f = run(&floor_url, None, rate);
        w.sort_unstable();
        f.sort_unstable();
        let (w50, w99, f50, f99) = (pct(&w, 0.5), pct(&w, 0.99), pct(&f, 0.5), pct(&f, 0.99));
        println!(
            "| {rate:>6} | {:>8} µs | {:>8} µs | {:>12} µs | {:>12} µs | {:>8.1}x |",
            w50,
            w99,
            f50,
            f99,
            w50 as f64 / f50.max(1) as f64
        );
    }
}
