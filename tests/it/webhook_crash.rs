//! The daemon killed (SIGKILL) with webhook deliveries pending, a batch under way and a retry
//! waiting: after a restart every accepted event reaches the receiver, none lost; an event
//! that arrives twice arrives with the same delivery id (at-least-once, as documented), and
//! only the batch under way at the kill repeats; the waiting retry goes at its time with
//! the same delivery id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Reply, verify_standard};
use crate::common::{BIN, free_addr};
use crate::common::{get, post_json};
use serde_json::json;

const EVENTS: usize = 100;

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

    // A slowish receiver: deliveries queue up behind the one it is answering; several
    // batches are done and recorded before the kill.
    let rx = Receiver::start();
    rx.set_default(Reply {
        delay: Duration::from_millis(40),
        ..Reply::status(200)
    });
    // A second receiver that is busy at first: its delivery waits for a retry at the kill.
    let busy = Receiver::start();
    busy.script([Reply {
        headers: vec![("retry-after", "4".to_string())],
        ..Reply::status(503)
    }]);
    let mut child = start(dir.path(), &api, "run1.log");
    let r = post_json(
        &format!("{base}/api/webhooks"),
        k,
        json!({"url": busy.url(), "events": ["session.failed"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let busy_ep = r.json()["id"].as_str().unwrap().to_string();
    let r = post_json(&format!("{base}/api/webhooks/{busy_ep}/test"), k, json!({}));
    assert_eq!(r.status, 202);
    let retry_dlv = r.json()["delivery_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get(&format!("{base}/api/deliveries/{retry_dlv}"), k).json();
        if d["attempts"].as_array().is_some_and(|a| a.len() == 1) {
            assert_eq!(d["status"], "pending", "{d}");
            assert_eq!(d["attempts"][0]["status_code"], 503, "{d}");
            break;
        }
        assert!(Instant::now() < deadline, "the first attempt: {d}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_try = busy.hits()[0].at;
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
    let batch = wagate::net::webhook::BATCH;
    rx.wait_for("more than a batch", Duration::from_secs(60), |h| {
        h.len() >= batch + batch / 2
    });
    kill9(&mut child);
    let before_restart = rx.hits().len();
    assert!(before_restart < EVENTS, "the kill came before the end");
    assert_eq!(
        busy.hits().len(),
        1,
        "the retry was still waiting at the kill"
    );

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
        duplicates <= batch,
        "only the batch under way at the kill repeats: {duplicates} of {before_restart} posted before"
    );

    // The retry that waited at the kill goes after the restart, at its time, same delivery.
    let again = busy.wait_for("the retry", Duration::from_secs(30), |h| h.len() == 2);
    assert_eq!(again[1].delivery_id(), retry_dlv);
    assert!(again[1].at.duration_since(first_try) >= Duration::from_secs(4));
    let d = get(&format!("{base}/api/deliveries/{retry_dlv}"), k).json();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut d = d;
    while d["status"] != "delivered" {
        assert!(Instant::now() < deadline, "{d}");
        std::thread::sleep(Duration::from_millis(50));
        d = get(&format!("{base}/api/deliveries/{retry_dlv}"), k).json();
    }
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2), "{d}");
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
    assert_eq!(log["deliveries"].as_array().unwrap().len(), EVENTS + 1);
    kill9(&mut child);
}
