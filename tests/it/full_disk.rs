//! A full disk under the real daemon: its data directory on a small tmpfs that a filler file
//! fills while `wagate run` works, paired with wa-mock. Sends and other writes are refused
//! with 507 `insufficient_storage` (a JSON error; 503 is allowed as well), reads keep
//! answering, nothing panics and the process stays up; a large upload that passes the
//! free-space margin but not the disk meets "no space" inside redb's commit and is refused the
//! same way. Once the filler is removed new sends are accepted and reach the recipient, with
//! no restart (the same process throughout).
//!
//! Needs root for the tmpfs: `.ci/full-disk.sh` mounts one, sets `FULL_DISK_DIR` to it, runs
//! this (ignored in a plain `cargo test`) and unmounts. Needs `--features wagate/trust-wa-mock`.
#![cfg(feature = "trust-wa-mock")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::daemon::{Daemon, Gate, wait_until};
use crate::common::peer::{peer, text_of};
use crate::common::{Resp, get, post_json};
use base64::Engine as _;
use serde_json::json;
use tokio::runtime::Runtime;
use wa_mock::{MockConfig, MockServer};

/// Write `path` until the filesystem refuses (ENOSPC); the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut written = 0u64;
    for chunk in [1 << 20, 4096, 1] {
        let buf = vec![0xA5u8; chunk];
        loop {
            match f.write(&buf) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                    break;
                }
            }
        }
    }
    let _ = f.sync_all();
    written
}

/// A refusal for lack of space: 507 `insufficient_storage` (or 503), a JSON error body.
fn assert_refused(r: &Resp, what: &str) {
    assert!(
        r.status == 507 || r.status == 503,
        "{what}: {} {}",
        r.status,
        r.text()
    );
    let code = r.error_code();
    if r.status == 507 {
        assert_eq!(code, "insufficient_storage", "{what}");
    }
}

fn free(dir: &Path) -> u64 {
    wagate::store::free_bytes(dir).unwrap()
}

#[test]
#[ignore = "needs a small tmpfs (root): run by .ci/full-disk.sh"]
fn a_full_disk_is_refused_with_507_reads_go_on_and_it_recovers_without_a_restart() {
    let root = PathBuf::from(
        std::env::var("FULL_DISK_DIR").expect("FULL_DISK_DIR: a small tmpfs (.ci/full-disk.sh)"),
    );
    let data = root.join("data");
    let filler = root.join("filler");
    let logs = tempfile::tempdir().unwrap();
    let rt = Runtime::new().unwrap();
    let mock = rt
        .block_on(MockServer::start(MockConfig::default()))
        .unwrap();
    let mut gate = Gate::new(&data, logs.path(), &mock);
    let base = gate.base();
    let key = gate.admin_key();
    let k = Some(key.as_str());
    let mut child: Daemon = gate.start();
    let pid = child.0.id();
    gate.pair(&rt, &mock, &key);
    let mut b = rt.block_on(peer(&mock));
    let to = b.jid.clone();
    let send = |text: &str| {
        post_json(
            &format!("{base}/api/sessions/default/messages/text"),
            k,
            json!({"to": to, "text": text}),
        )
    };

    let r = send("before the disk filled");
    assert_eq!(r.status, 202, "{}", r.text());
    let before = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        text_of(&mut b, &rt, "the first text"),
        "before the disk filled"
    );

    // Fill the disk.
    let filled = fill(&filler);
    eprintln!(
        "full disk: filler {filled} bytes, {} bytes free",
        free(&root)
    );

    // Writes are refused: a send, a webhook endpoint, a session.
    let t0 = Instant::now();
    let mut refused = 0;
    for i in 0..20 {
        assert_refused(&send(&format!("while full {i}")), "a send on a full disk");
        refused += 1;
    }
    assert_refused(
        &post_json(
            &format!("{base}/api/webhooks"),
            k,
            json!({"url": "http://127.0.0.1:9/hook"}),
        ),
        "a webhook endpoint on a full disk",
    );
    assert_refused(
        &post_json(&format!("{base}/api/sessions"), k, json!({"id": "more"})),
        "a session on a full disk",
    );
    // Reads go on.
    for path in [
        "/api/health".to_string(),
        "/api/sessions".to_string(),
        "/api/sessions/default".to_string(),
        format!("/api/sessions/default/messages/{before}"),
        "/api/sessions/default/queue".to_string(),
        "/api/deliveries".to_string(),
        "/metrics".to_string(),
    ] {
        let r = get(&format!("{base}{path}"), k);
        assert_eq!(r.status, 200, "GET {path} on a full disk: {}", r.text());
    }
    let msg = get(&format!("{base}/api/sessions/default/messages/{before}"), k).json();
    assert!(
        ["sent", "delivered", "read"].contains(&msg["status"].as_str().unwrap()),
        "{msg}"
    );
    // The daemon lives on for a while on the full disk (its session, webhooks, timers run).
    std::thread::sleep(Duration::from_secs(3));
    assert!(child.alive(), "wagate exited on a full disk");
    eprintln!(
        "full disk: {refused} sends refused with 507, reads 200, up after {:?}",
        t0.elapsed()
    );

    // Free a little more than the store's margin; an upload larger than what is free passes
    // the margin check but not the disk: redb meets ENOSPC inside its commit.
    let margin = wagate::store::MIN_FREE_BYTES;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    f.set_len(filled.saturating_sub(margin + (2 << 20)))
        .unwrap();
    drop(f);
    let room = free(&root);
    let big = vec![0x42u8; (room + (4 << 20)) as usize];
    let r = post_json(
        &format!("{base}/api/sessions/default/messages/document"),
        k,
        json!({
            "to": to,
            "base64": base64::engine::general_purpose::STANDARD.encode(&big),
            "file_name": "big.bin"
        }),
    );
    eprintln!(
        "full disk: {room} bytes free, a {} byte upload answered {} {}",
        big.len(),
        r.status,
        r.text()
    );
    assert_refused(&r, "an upload larger than the free space");
    // Reads after the failed commit: the store reopens its file in place.
    let mut read_statuses = Vec::new();
    for _ in 0..10 {
        read_statuses.push(get(&format!("{base}/api/sessions/default"), k).status);
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("full disk: reads after the failed commit answered {read_statuses:?}");
    assert!(
        child.alive(),
        "wagate exited after a commit met a full disk"
    );

    // Free the space: the same process takes and sends again.
    std::fs::remove_file(&filler).unwrap();
    let t1 = Instant::now();
    let mut after = None;
    wait_until(
        "a send accepted after the space came back",
        Duration::from_secs(20),
        || {
            let r = send("after the space came back");
            match r.status {
                202 => {
                    after = Some(r.json()["id"].as_str().unwrap().to_string());
                    true
                }
                507 | 503 => false,
                other => panic!("{other}: {}", r.text()),
            }
        },
    );
    let recovered = t1.elapsed();
    assert_eq!(
        text_of(&mut b, &rt, "the text after"),
        "after the space came back"
    );
    let after = after.unwrap();
    wait_until("the new message sent", Duration::from_secs(20), || {
        let v = get(&format!("{base}/api/sessions/default/messages/{after}"), k).json();
        ["sent", "delivered", "read"].contains(&v["status"].as_str().unwrap_or(""))
    });
    assert!(gate.connected(&key));
    assert!(child.alive());
    assert_eq!(child.0.id(), pid, "no restart");
    let log = gate.all_logs();
    assert!(!log.contains("panicked"), "{log}");
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    eprintln!(
        "full disk: log lines: {} refused writes, {} commits that met ENOSPC, {} reopens",
        count("store write refused: the disk is full"),
        count("disk full under a commit"),
        count("store reopened after a full disk")
    );
    eprintln!(
        "full disk: recovered (send accepted) {recovered:?} after the filler was removed, same pid {pid}"
    );
    child.kill9();
    drop(b);
    rt.block_on(mock.shutdown());
}
