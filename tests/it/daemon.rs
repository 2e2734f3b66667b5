//! The `wagate` binary as a user runs it: offline daemon, CLI through the control socket and
//! on the store directly, SIGTERM, configuration errors.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::daemon::terminate;
use crate::common::{BIN, dead_url, free_addr};

fn wagate(data: &Path, url: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", data)
        .env("WAGATE_API_ADDR", free_addr())
        .env("WAGATE_WHATSAPP_URL", url)
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("WAGATE_LOG", "info");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn version_is_printed() {
    let out = run_ok(Command::new(BIN).arg("--version"));
    assert_eq!(out.trim(), format!("wagate {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn offline_daemon_backs_off_answers_the_cli_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let url = dead_url();
    // An admin key made before the first start closes first-boot setup: sessions start.
    let key = run_ok(wagate(dir.path(), &url).args(["key", "create", "--scope", "admin"]));
    assert!(key.trim().starts_with("wgk_"), "{key}");
    assert_eq!(key.lines().count(), 1);
    let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let mut child = wagate(dir.path(), &url)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();

    // The default session is created and keeps retrying: disconnected with attempts.
    wait_until("the default session to be disconnected", || {
        let out = wagate(dir.path(), &url)
            .args(["session", "list"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("default              disconnected")
    });
    let sock = dir.path().join("wagate.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // CLI verbs go through the daemon (the store is locked by it).
    run_ok(wagate(dir.path(), &url).args(["session", "add", "shop"]));
    let list = run_ok(wagate(dir.path(), &url).args(["session", "list"]));
    assert!(list.contains("shop"), "{list}");
    let out = wagate(dir.path(), &url)
        .args(["session", "add", "Not Valid"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid session id"));

    let status = terminate(&mut child);
    assert!(status.success(), "exit status {status:?}");
    assert!(!sock.exists(), "the control socket is removed on exit");

    // Logs to a file (or the journal) are plain text: no terminal colour codes.
    let logged = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(logged.contains("INFO"), "{logged}");
    assert!(
        !logged.contains('\x1b'),
        "escape codes in the log:\n{logged}"
    );

    // The store was closed cleanly: the CLI opens it directly now that no daemon runs.
    let list = run_ok(wagate(dir.path(), &url).args(["session", "list"]));
    assert!(list.contains("default") && list.contains("shop"), "{list}");
    run_ok(wagate(dir.path(), &url).args(["session", "remove", "shop"]));
    let list = run_ok(wagate(dir.path(), &url).args(["session", "list"]));
    assert!(!list.contains("shop"), "{list}");
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = wagate(dir.path(), "http://example.invalid/")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("whatsapp.url"), "{err}");

    let out = wagate(dir.path(), &dead_url())
        .env("WAGATE_STORE__CACHE_SIZE_MB", "0")
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("store.cache_size_mb"));

    let printed = run_ok(wagate(dir.path(), &dead_url()).args(["config", "check"]));
    assert!(
        printed.contains("[whatsapp]") && printed.contains("127.0.0.1"),
        "{printed}"
    );
}
