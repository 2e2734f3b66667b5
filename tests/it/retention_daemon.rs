//! The real daemon prunes old message records at start: finished sent messages and received
//! messages past `[store] message_retention_days` go with their index rows; a queued message
//! stays whatever its age.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;
use wagate::store::Store;
use wagate::store::inbound::{self, InboundRecord};
use wagate::store::queue::{self, NewMessage};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn message(text: &str, now_ms: i64) -> NewMessage {
    NewMessage {
        kind: "text".into(),
        to: "15550001111@s.whatsapp.net".into(),
        content: serde_json::json!({ "text": text }),
        blob: None,
        idempotency_key: Some(format!("key-{text}")),
        now_ms,
        to_phone: None,
        to_lid: None,
    }
}

/// The text without terminal colour sequences (ESC [ ... m).
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = plain(&std::fs::read_to_string(path).unwrap_or_default());
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daemon_prunes_old_finished_messages_at_start_and_keeps_queued_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wagate.redb");
    let now = wagate::events::now_ms();
    let day = 86_400_000;
    let store = Store::open(&db, 1 << 20).unwrap();
    let (old_failed, old_queued, fresh_failed) = store
        .write_blocking(|t| {
            let a = queue::enqueue(t, "s1", &message("old", now - 40 * day))?.record;
            queue::mark_failed(t, "s1", &a.id, "no such user", now - 40 * day)?;
            let q = queue::enqueue(t, "s1", &message("waiting", now - 40 * day))?.record;
            let f = queue::enqueue(t, "s1", &message("fresh", now - day))?.record;
            queue::mark_failed(t, "s1", &f.id, "no such user", now - day)?;
            for (id, at) in [("msg_old", now - 40 * day), ("msg_new", now - day)] {
                inbound::put(
                    t,
                    "s1",
                    &InboundRecord {
                        id: id.into(),
                        chat: "2@s.whatsapp.net".into(),
                        sender: "2@s.whatsapp.net".into(),
                        wa_id: format!("W_{id}"),
                        kind: "text".into(),
                        sent_at: at,
                        ..Default::default()
                    },
                )?;
            }
            Ok((a, q, f))
        })
        .unwrap();
    store.close();
    drop(store);

    let log_path = dir.path().join("run.log");
    let api = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let mut daemon = Daemon(
        Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WAGATE_DATA_DIR", dir.path())
            .env("WAGATE_API_ADDR", &api)
            .env("WAGATE_WHATSAPP_URL", "ws://127.0.0.1:9/ws/chat")
            .env("WAGATE_DISPLAY__BACKEND", "none")
            .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
            .env("WAGATE_DISCOVERY__ENABLED", "false")
            .env("WAGATE_STORE__MESSAGE_RETENTION_DAYS", "30")
            .env("WAGATE_LOG", "info")
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = wait_for_log(&log_path, "message records pruned");
    assert!(
        log.contains("sent=1") && log.contains("received=1"),
        "{log}"
    );
    crate::common::daemon::terminate(&mut daemon.0);

    let store = Store::open(&db, 1 << 20).unwrap();
    let (a, q, f, idem, old_in, new_in, depth) = store
        .read_blocking(|t| {
            Ok((
                queue::get(t, "s1", &old_failed.id)?,
                queue::get(t, "s1", &old_queued.id)?,
                queue::get(t, "s1", &fresh_failed.id)?,
                queue::depth(t, "s1")?,
                inbound::get(t, "s1", "msg_old")?,
                inbound::get(t, "s1", "msg_new")?,
                queue::next(t, "s1")?.map(|r| r.id),
            ))
        })
        .unwrap();
    assert!(a.is_none(), "the old failed message is gone");
    assert!(q.is_some() && f.is_some());
    assert_eq!(idem, 1);
    assert!(old_in.is_none() && new_in.is_some());
    assert_eq!(depth, Some(old_queued.id.clone()));
    let replay = store
        .write_blocking(|t| queue::by_idempotency_key(t, "s1", "key-old"))
        .unwrap();
    assert!(replay.is_none(), "its idempotency key went with it");
}
