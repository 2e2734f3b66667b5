//! What the appliance image relies on: the default configuration it ships is valid, and the
//! daemon speaks systemd's notify protocol (READY=1 once the API answers, watchdog pings) as
//! `systemd/wagate.service` expects.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::daemon::terminate;
use crate::common::{BIN, free_addr};

/// The configuration file the Buildroot rootfs overlay installs as /etc/wagate/wagate.toml.
fn overlay_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("buildroot/board/wagate/rootfs-overlay/etc/wagate/wagate.toml")
}

fn wagate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

#[test]
fn the_appliance_configuration_passes_config_check() {
    let out = wagate()
        .arg("--config")
        .arg(overlay_config())
        .args(["config", "check"])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "config check refused it: {stderr}");
    let effective: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(
        effective["store"]["data_dir"].as_str(),
        Some("/var/lib/wagate")
    );
    assert_eq!(effective["api"]["addr"].as_str(), Some("0.0.0.0:8443"));
    assert_eq!(effective["api"]["tls"].as_str(), Some("self-signed"));
    assert_eq!(
        effective["webhooks"]["require_clock_sync"].as_bool(),
        Some(true)
    );
    assert_eq!(effective["display"]["backend"].as_str(), Some("spi"));
    assert_eq!(effective["display"]["terminal_qr"].as_bool(), Some(false));
}

#[test]
fn the_post_build_script_sets_the_boards_gpio_chip_and_the_result_is_valid() {
    // Buildroot runs board/wagate/post-build.sh TARGET_DIR GPIO_CHIP on the assembled rootfs.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("buildroot/board/wagate");
    let target = tempfile::tempdir().unwrap();
    let etc = target.path().join("etc/wagate");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::copy(overlay_config(), etc.join("wagate.toml")).unwrap();
    let status = Command::new("sh")
        .arg(root.join("post-build.sh"))
        .arg(target.path())
        .arg("pinctrl-rp1")
        .status()
        .unwrap();
    assert!(status.success());
    assert!(target.path().join("var/lib/wagate").is_dir());
    let out = wagate()
        .arg("--config")
        .arg(etc.join("wagate.toml"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effective: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(
        effective["display"]["gpio_chip"].as_str(),
        Some("pinctrl-rp1")
    );

    // A label that is not one is refused, not written into the file.
    let status = Command::new("sh")
        .arg(root.join("post-build.sh"))
        .arg(target.path())
        .arg("pinctrl/\"bad\" label")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}

#[test]
fn buildroot_keeps_the_size_tuned_release_profile() {
    // Buildroot's cargo infrastructure overrides the release profile through
    // CARGO_PROFILE_RELEASE_*; package/wagate/wagate.mk sets them back to Cargo.toml's values.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
    let release = &manifest["profile"]["release"];
    let mk = std::fs::read_to_string(dir.join("buildroot/package/wagate/wagate.mk")).unwrap();
    let set = |key: &str| -> Option<String> {
        let prefix = format!("CARGO_PROFILE_RELEASE_{key}=");
        mk.lines()
            .map(|l| l.trim().trim_end_matches('\\').trim())
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
    };
    let plain = |v: &toml::Value| match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (key, field) in [
        ("OPT_LEVEL", "opt-level"),
        ("LTO", "lto"),
        ("CODEGEN_UNITS", "codegen-units"),
        ("PANIC", "panic"),
    ] {
        assert_eq!(
            set(key).as_deref(),
            Some(plain(&release[field]).as_str()),
            "wagate.mk's CARGO_PROFILE_RELEASE_{key} differs from [profile.release] {field}"
        );
    }

    // The size measurement links as the image does: rust-lld, RELR, identical code folding.
    let size = std::fs::read_to_string(dir.join("bench/arm-size.sh")).unwrap();
    for flag in ["-fuse-ld=lld", "pack-relative-relocs", "--icf=all"] {
        let mk_flag = flag.replace(',', "$(comma)");
        assert!(mk.contains(&mk_flag), "wagate.mk does not link with {flag}");
        assert!(
            size.contains(flag),
            "bench/arm-size.sh does not link with {flag}"
        );
    }
}

/// Datagrams the daemon sent to the notify socket until `want` arrived (or the deadline).
fn receive_until(sock: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = msg.lines().any(|l| l == want);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {want} within {within:?}; received {seen:?}");
}

#[test]
fn under_systemd_the_daemon_reports_ready_once_the_api_answers_then_pings_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = free_addr();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("ws://{}/ws/chat", l.local_addr().unwrap())
    };
    let mut child = wagate()
        .env("WAGATE_DATA_DIR", dir.path().join("data"))
        .env("WAGATE_API_ADDR", &addr)
        .env("WAGATE_WHATSAPP_URL", dead)
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("NOTIFY_SOCKET", &notify_path)
        // WatchdogSec=1s: pings every 500 ms.
        .env("WATCHDOG_USEC", "1000000")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let before_ready = receive_until(&sock, "READY=1", Duration::from_secs(30));
    assert!(
        before_ready.iter().all(|m| !m.contains("WATCHDOG=1")),
        "watchdog pings before READY: {before_ready:?}"
    );
    // READY means the API already listens: the health route answers at once.
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "API not listening at READY: {health:?}");

    // Two pings within two periods: the engine answers, so the pings keep coming.
    let start = Instant::now();
    receive_until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    receive_until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    assert!(start.elapsed() < Duration::from_secs(3));
    terminate(&mut child);
}

#[test]
fn a_watchdog_meant_for_another_process_gets_no_pings() {
    // WATCHDOG_PID names another process (systemd sets it to the main PID): READY only.
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let addr = free_addr();
    let mut child = wagate()
        .env("WAGATE_DATA_DIR", dir.path().join("data"))
        .env("WAGATE_API_ADDR", &addr)
        .env("WAGATE_WHATSAPP_URL", "ws://127.0.0.1:9/ws/chat")
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    receive_until(&sock, "READY=1", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(600));
    let mut buf = [0u8; 512];
    let extra = sock
        .recv(&mut buf)
        .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned());
    assert!(extra.is_err(), "unexpected notification: {extra:?}");
    terminate(&mut child);
}
