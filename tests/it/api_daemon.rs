//! The `wagate` binary's first boot as a user meets it: the setup code in the log, no session
//! before it is claimed, the admin key once, sessions starting after; the CLI's
//! `key create` closing setup through the control socket; a clean SIGTERM with an event
//! stream open; slow request heads (slowloris) cut off by `api.header_timeout_secs`.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::common::{BIN, free_addr};
use serde_json::json;

struct Daemon {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
    url: String,
}

fn command(dir: &std::path::Path, url: &str, addr: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", dir)
        .env("WAGATE_API_ADDR", addr)
        .env("WAGATE_WHATSAPP_URL", url)
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("WAGATE_LOG", "info")
        .env("NO_COLOR", "1");
    cmd
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let url = dead_url();
        let addr = free_addr();
        let mut child = command(dir.path(), &url, &addr)
            .envs(env.iter().copied())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let base = format!("http://{addr}");
        let d = Daemon {
            child,
            base,
            lines,
            dir,
            url,
        };
        d.wait("the API to answer", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        d
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first log line containing `needle`.
    fn log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        command(self.dir.path(), &self.url, &free_addr())
            .args(args)
            .output()
            .unwrap()
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        crate::common::daemon::terminate(&mut self.child)
    }
}

fn session_count(d: &Daemon) -> u64 {
    let h = get(&d.url("/api/health"), None).json();
    h["sessions"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

#[test]
fn first_boot_setup_then_sessions_start() {
    let d = Daemon::start();
    let line = d.log_line("first-boot setup");
    let code = line
        .split("code=")
        .nth(1)
        .map(|s| s[..9].to_string())
        .unwrap_or_else(|| panic!("no code in {line}"));
    assert_eq!(code.len(), 9);
    assert_eq!(&code[4..5], "-");

    // Before the claim: setup pending, no session exists or runs.
    let h = get(&d.url("/api/health"), None).json();
    assert_eq!(h["setup_pending"], true);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(session_count(&d), 0);
    assert_eq!(get(&d.url("/api/sessions"), None).status, 401);

    // Claim: the admin key, once.
    let r = post_json(&d.url("/api/setup"), None, json!({ "code": code }));
    assert_eq!(r.status, 201, "{}", r.text());
    let key = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(
        post_json(&d.url("/api/setup"), None, json!({ "code": code })).status,
        410
    );

    // Now the default session exists and tries to connect.
    d.wait("the default session to run", || {
        let r = get(&d.url("/api/sessions/default"), Some(&key));
        r.status == 200
            && ["connecting", "disconnected"].contains(&r.json()["state"].as_str().unwrap())
    });

    // SIGTERM with an event stream open: a clean, prompt exit.
    let sse = Sse::open(&d.url("/api/events"), &key);
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    drop(sse);
}

#[test]
fn cli_key_create_through_the_daemon_closes_setup() {
    let d = Daemon::start();
    d.log_line("first-boot setup");
    assert_eq!(get(&d.url("/api/setup"), None).json()["open"], true);

    let out = d.cli(&[
        "key",
        "create",
        "--scope",
        "sessions:read",
        "--session",
        "default",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "only the key on stdout: {stdout}"
    );
    let key = stdout.trim().to_string();
    assert!(key.starts_with("wgk_"));

    assert_eq!(get(&d.url("/api/setup"), None).json()["open"], false);
    assert_eq!(
        post_json(&d.url("/api/setup"), None, json!({"code": "AAAA-AAAA"})).status,
        410
    );
    // The key works, limited to its session; the default session was created at the close.
    d.wait("the default session", || {
        get(&d.url("/api/sessions/default"), Some(&key)).status == 200
    });
    let list = get(&d.url("/api/sessions"), Some(&key)).json();
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Bad scopes are refused by the CLI with a message.
    let out = d.cli(&["key", "create", "--scope", "root"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));

    assert!(d.terminate().success());
}

/// Connections that send their request head a byte at a time (slowloris) are closed once
/// `api.header_timeout_secs` has passed since they opened, while other clients are served
/// meanwhile; an event stream open longer than the timeout keeps its connection.
#[test]
fn slow_request_heads_are_cut_off_and_others_served() {
    use std::io::{Read, Write};
    let d = Daemon::start_with(&[("WAGATE_API__HEADER_TIMEOUT_SECS", "2")]);
    d.log_line("first-boot setup");
    let out = d.cli(&["key", "create", "--scope", "admin"]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let addr = d.base.trim_start_matches("http://").to_string();

    // An event stream, opened first: it must outlive the header timeout.
    let mut events = Sse::open(&d.url("/api/events"), &key);

    // 20 slow clients, each sending one byte of a valid request head every 300 ms.
    let head = b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n\r\n";
    let started = Instant::now();
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                for b in head.iter() {
                    if c.write_all(&[*b]).is_err() {
                        return Some(started.elapsed());
                    }
                    let mut buf = [0u8; 256];
                    match c.read(&mut buf) {
                        Ok(0) => return Some(started.elapsed()),
                        Ok(_) => return None, // an answer: the server waited it out
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return Some(started.elapsed()),
                    }
                }
                None
            })
        })
        .collect();

    // Meanwhile the API answers others.
    for _ in 0..5 {
        assert_eq!(get(&d.url("/api/health"), None).status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    for t in slow {
        let closed_after = t.join().unwrap();
        // The whole head takes about 19 s to send; the server closes at about 2 s.
        let at = closed_after.expect("a slow connection was served instead of closed");
        assert!(
            at < Duration::from_secs(15),
            "a slow connection stayed open {at:?}"
        );
    }

    // The stream opened before them still delivers: a new session's event arrives on it.
    assert!(started.elapsed() > Duration::from_secs(2));
    let r = post_json(&d.url("/api/sessions"), Some(&key), json!({"id": "late"}));
    assert_eq!(r.status, 201, "{}", r.text());
    events.until("session event for late", |e| {
        e.data.to_string().contains("late")
    });

    assert!(d.terminate().success());
}
