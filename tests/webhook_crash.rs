//! The daemon killed (SIGKILL) with webhook deliveries pending and one under way: after a
//! restart every accepted event reaches the receiver, none lost; an event that arrives twice
//! arrives with the same delivery id (at-least-once, as documented).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::{Receiver, Reply, verify_standard};
use common::{get, post_json};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_wagate");
const EVENTS: usize = 30;

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn wagate(data: &Path, api: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", data)
        .env("WAGATE_API_ADDR", api)
        // WhatsApp is a closed port: sessions only retry; this test is about webhooks.
        .env("WAGATE_WHATSAPP_URL", "ws://127.0.0.1:9/ws/chat")
        .env("WAGATE_DISPLAY__BACKEND", "none")
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("WAGATE_LOG", "info");
    cmd
}

/// The daemon; killed when dropped, so a failing test leaves no process behind.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(data: &Path, api: &str, log: &str) -> Daemon {
    let log = std::fs::File::create(data.join(log)).unwrap();
    let child = Daemon(
        wagate(data, api)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://{api}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(api).is_ok()
            && get(&format!("{base}/api/health"), None).status == 200
        {
            return child;
        }
        assert!(Instant::now() < deadline, "wagate did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill9(child: &mut Daemon) {
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.0.wait().unwrap();
}

#[test]
fn killed_with_deliveries_pending_every_event_arrives_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let api = free_addr();
    let base = format!("http://{api}");
    let out = wagate(dir.path(), &api)
        .args(["key", "create", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let k = Some(key.as_str());

    // A slow receiver: deliveries queue up behind the one it is answering.
    let rx = Receiver::start();
    rx.set_default(Reply {
        delay: Duration::from_millis(400),
        ..Reply::status(200)
    });
    let mut child = start(dir.path(), &api, "run1.log");
    let r = post_json(
        &format!("{base}/api/webhooks"),
        k,
        json!({"url": rx.url(), "events": ["session.failed"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let ep = r.json()["id"].as_str().unwrap().to_string();
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    let mut accepted = BTreeSet::new();
    for _ in 0..EVENTS {
        let r = post_json(&format!("{base}/api/webhooks/{ep}/test"), k, json!({}));
        assert_eq!(r.status, 202);
        accepted.insert(r.json()["event_id"].as_str().unwrap().to_string());
    }
    rx.wait_for("a few deliveries", Duration::from_secs(30), |h| {
        h.len() >= 3
    });
    kill9(&mut child);
    let before_restart = rx.hits().len();
    assert!(before_restart < EVENTS, "the kill came before the end");

    rx.set_default(Reply::status(200));
    let mut child = start(dir.path(), &api, "run2.log");
    let hits = rx.wait_for("every accepted event", Duration::from_secs(60), |h| {
        let seen: BTreeSet<String> = h
            .iter()
            .map(|h| h.json()["id"].as_str().unwrap().to_string())
            .collect();
        accepted.is_subset(&seen)
    });

    let mut delivery_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &hits {
        verify_standard(&secret, h).unwrap();
        delivery_of
            .entry(h.json()["id"].as_str().unwrap().to_string())
            .or_default()
            .insert(h.delivery_id());
    }
    assert!(
        delivery_of.values().all(|d| d.len() == 1),
        "an event delivered twice carries one delivery id: {delivery_of:?}"
    );
    let duplicates = hits.len() - accepted.len();
    eprintln!(
        "crash: {} events accepted, {} posted before the kill, {} posts in all, {} duplicated",
        accepted.len(),
        before_restart,
        hits.len(),
        duplicates
    );
    assert!(
        duplicates <= wagate::net::webhook::BATCH,
        "only the batch under way at the kill repeats"
    );
    let log = get(&format!("{base}/api/deliveries?limit=1000"), k).json();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut log = log;
    while !log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered")
    {
        assert!(Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
        log = get(&format!("{base}/api/deliveries?limit=1000"), k).json();
    }
    assert_eq!(log["deliveries"].as_array().unwrap().len(), EVENTS);
    kill9(&mut child);
}
