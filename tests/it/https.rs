//! The `wagate` binary serving HTTPS: the self-signed certificate made on first start and
//! kept, its fingerprint in `/api/health` and `wagate info`, a client pinning it, a client
//! pinning another one refused, `files` mode with a given certificate, the host guard over
//! HTTPS, and the setup screen drawing the served certificate's fingerprint.

use crate::common::pinned;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::BIN;
use embedded_graphics::prelude::Size;
use wagate::display::{self, DisplayState, Frame, Screen, png, screens};
use wagate::net::api::tls;

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn dead_url() -> String {
    format!("ws://{}/ws/chat", free_addr())
}

fn command(data: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", data)
        .env("WAGATE_API_ADDR", addr.to_string())
        .env("WAGATE_WHATSAPP_URL", dead_url())
        .env("WAGATE_DISPLAY__BACKEND", "none")
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("WAGATE_DISCOVERY__ENABLED", "false")
        .env("WAGATE_SESSIONS__AUTOSTART", "false")
        .env("WAGATE_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

struct Daemon(Child);

impl Daemon {
    /// Start `wagate run`; its log goes to [`log_path`] (appended across restarts).
    fn start(data: &Path, addr: SocketAddr, env: &[(&str, &str)]) -> Daemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(data))
            .unwrap();
        let child = command(data, addr, env)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut d = Daemon(child);
        // Ready when this daemon says it listens on `addr` (not merely when something
        // answers on the port) and is still running.
        let said = format!("API listening addr={addr}");
        wait("the daemon to listen on the API port", || {
            if let Ok(Some(status)) = d.0.try_wait() {
                panic!(
                    "the daemon exited ({status}) while starting:\n{}",
                    log_tail(data)
                );
            }
            std::fs::read_to_string(log_path(data)).is_ok_and(|log| log.contains(&said))
                && std::net::TcpStream::connect(addr).is_ok()
        });
        d
    }
}

/// The last lines of the daemon's log, for a failure message.
fn log_tail(data: &Path) -> String {
    let log = std::fs::read_to_string(log_path(data)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A pinned request that must get an answer: a failure names the request and carries the
/// daemon's log, so a transport error can be told from a daemon that went away.
fn must(data: &Path, what: &str, r: Result<pinned::Answer, String>) -> pinned::Answer {
    r.unwrap_or_else(|e| panic!("{what}: {e}\ndaemon log:\n{}", log_tail(data)))
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the daemon with data directory `data` logs: beside it, `<data>.log`.
fn log_path(data: &Path) -> std::path::PathBuf {
    data.with_extension("log")
}

fn wait(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Change one hex digit of a fingerprint: a pin of some other certificate.
fn other_pin(fp: &str) -> String {
    other_digit(fp, 0)
}

/// `fp` with its hex digit at byte `i` changed.
fn other_digit(fp: &str, i: usize) -> String {
    let mut b = fp.as_bytes().to_vec();
    assert!(b[i].is_ascii_hexdigit(), "{fp}[{i}]");
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

#[test]
fn self_signed_certificate_is_pinned_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = free_addr();
    let env = [("WAGATE_API__TLS", "self-signed")];
    let host = addr.to_string();

    let fp = {
        let _d = Daemon::start(&data, addr, &env);
        let key = data.join(tls::SELF_SIGNED_KEY);
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key must be the owner's alone");
        let mut cfg = wagate::config::Config::default();
        cfg.store.data_dir = data.clone();
        cfg.api.tls = wagate::config::TlsMode::SelfSigned;
        let fp = tls::read_fingerprint(&cfg)
            .unwrap()
            .expect("certificate on disk");

        // Pinned to the certificate on disk: the handshake passes, health reports the pin.
        let health = must(
            &data,
            "health, pinned",
            pinned::request(addr, &host, &fp, "GET", "/api/health", None),
        );
        assert_eq!(health.status, 200, "{}", health.body);
        let h = health.json();
        assert_eq!(h["tls"], true);
        assert_eq!(h["cert_sha256"], fp.as_str());
        let id = std::fs::read_to_string(data.join("device-id")).unwrap();
        assert_eq!(h["device_id"], id.trim());

        // Pinned to any other certificate: refused in the handshake, nothing is answered.
        let e =
            pinned::request(addr, &host, &other_pin(&fp), "GET", "/api/health", None).unwrap_err();
        assert!(e.contains("is not the pinned"), "{e}");

        // Plain HTTP on the HTTPS port gets no answer.
        let plain = ureq::get(&format!("http://{addr}/api/health")).call();
        assert!(plain.is_err(), "plain HTTP answered: {plain:?}");

        // The host guard holds over HTTPS too.
        let bad = pinned::request(
            addr,
            "rebind.example.com",
            &fp,
            "POST",
            "/api/setup",
            Some(r#"{"code":"AAAA-AAAA"}"#),
        )
        .unwrap();
        assert_eq!(bad.status, 421, "{}", bad.body);
        assert_eq!(bad.json()["error"]["code"], "host_not_allowed");
        let ok = must(
            &data,
            "setup page",
            pinned::request(addr, &host, &fp, "GET", "/api/setup", None),
        );
        assert_eq!(ok.status, 200, "{}", ok.body);

        // `wagate info` beside the running daemon: the same id and fingerprint.
        let out = command(&data, addr, &env)
            .args(["info", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["device_id"], id.trim());
        assert_eq!(info["cert_sha256"], fp.as_str());
        assert_eq!(info["tls"], "self-signed");
        assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(info["api_urls"][0], format!("https://{addr}/api"));
        let out = command(&data, addr, &env).arg("info").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains(&fp) && text.contains(id.trim()), "{text}");
        fp
    };

    // A restart keeps the certificate: the old pin still works.
    let _d = Daemon::start(&data, addr, &env);
    let health = must(
        &data,
        "health after a restart",
        pinned::request(addr, &host, &fp, "GET", "/api/health", None),
    );
    assert_eq!(health.json()["cert_sha256"], fp.as_str());
}

#[test]
fn files_mode_serves_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let given = rcgen::generate_simple_self_signed(vec!["gate.example.lan".to_owned()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, given.cert.pem()).unwrap();
    std::fs::write(&key, given.signing_key.serialize_pem()).unwrap();
    let fp = tls::fingerprint(given.cert.der());
    let addr = free_addr();
    let env = [
        ("WAGATE_API__TLS", "files"),
        ("WAGATE_API__TLS_CERT", cert.to_str().unwrap()),
        ("WAGATE_API__TLS_KEY", key.to_str().unwrap()),
        ("WAGATE_API__HOST_NAMES", r#"["gate.example.lan"]"#),
    ];
    let _d = Daemon::start(&data, addr, &env);
    let health = must(
        &data,
        "health, files mode",
        pinned::request(addr, "gate.example.lan", &fp, "GET", "/api/health", None),
    );
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["cert_sha256"], fp.as_str());
    // The configured name passes the host guard.
    let setup = must(
        &data,
        "setup page, files mode",
        pinned::request(addr, "gate.example.lan:443", &fp, "GET", "/api/setup", None),
    );
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert!(
        !data.join(tls::SELF_SIGNED_CERT).exists(),
        "files mode makes no certificate"
    );
    assert!(pinned::request(addr, "x", &other_pin(&fp), "GET", "/api/health", None).is_err());
}

#[test]
fn files_mode_with_an_unreadable_key_refuses_to_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let given = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, given.cert.pem()).unwrap();
    let key = dir.path().join("missing-key.pem");
    let out = command(
        &dir.path().join("data"),
        free_addr(),
        &[
            ("WAGATE_API__TLS", "files"),
            ("WAGATE_API__TLS_CERT", cert.to_str().unwrap()),
            ("WAGATE_API__TLS_KEY", key.to_str().unwrap()),
        ],
    )
    .arg("run")
    .output()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing-key.pem") && err.contains(r#"api.tls = "files""#),
        "{err}"
    );
}

/// The setup screen of a running, unclaimed daemon with `api.tls = "self-signed"` draws the
/// fingerprint of the certificate it serves, whole. The fingerprint comes from `wagate info`,
/// and a client pinned to it completes the handshake (so it is the served certificate's);
/// the frame the daemon's PNG backend wrote must then equal, pixel for pixel, the library's
/// own setup screen for that state (the device's name and address, the one-time code from
/// the log, the fingerprint as the display task shortens it), and must differ from the same
/// screen drawn with a fingerprint one hex digit off at its start or at its end.
#[test]
fn the_setup_screen_shows_the_served_certificates_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let screen_png = dir.path().join("screen.png");
    let addr = free_addr();
    let env = [
        ("WAGATE_API__TLS", "self-signed"),
        ("WAGATE_DISPLAY__BACKEND", "png"),
        ("WAGATE_DISPLAY__PNG_PATH", screen_png.to_str().unwrap()),
    ];
    let _d = Daemon::start(&data, addr, &env);

    // The fingerprint the daemon reports, and the one its TLS handshake proves.
    let out = command(&data, addr, &env)
        .args(["info", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fp = info["cert_sha256"]
        .as_str()
        .expect("cert_sha256")
        .to_owned();
    assert_eq!(fp.len(), 95, "{fp}");
    let health = must(
        &data,
        "a client pinned to the reported fingerprint",
        pinned::request(addr, &addr.to_string(), &fp, "GET", "/api/health", None),
    );
    assert_eq!(health.json()["cert_sha256"], fp.as_str());

    // Unclaimed: the one-time setup code, as the log gives it.
    let mut code = String::new();
    wait("the setup code in the log", || {
        let log = std::fs::read_to_string(log_path(&data)).unwrap_or_default();
        let key = r#"{"code":""#;
        if let Some(at) = log.find(key) {
            code = log[at + key.len()..].chars().take(9).collect();
        }
        !code.is_empty()
    });

    // The screen state the daemon's display task holds, with a given fingerprint.
    let cfg = wagate::config::Config::default();
    let (w, h) = cfg.display.frame_size();
    let drawn = |fingerprint: &str| -> Frame {
        let state = DisplayState {
            device_name: display::hostname(),
            addresses: display::lan_addresses(addr.ip()),
            api_port: addr.port(),
            tls: true,
            setup_code: Some(screens::short(&code)),
            cert_fingerprint: Some(screens::short(fingerprint)),
            ..DisplayState::default()
        };
        assert_eq!(Screen::auto(&state), Screen::Setup);
        // Through PNG and back, as the daemon's frame is read here.
        let frame = display::render(Screen::Setup, &state, Size::new(w, h));
        png::decode(&png::encode(&frame).unwrap()).unwrap()
    };
    let want = drawn(&fp);

    // The first frame may predate the setup update: wait for the frame to settle on it.
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(bytes) = std::fs::read(&screen_png)
            && let Ok(frame) = png::decode(&bytes)
        {
            if frame == want {
                got = Some(frame);
                break;
            }
            got = Some(frame);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = got.expect("the daemon wrote no screen frame");
    let differ = |a: &Frame, b: &Frame| {
        a.pixels()
            .iter()
            .zip(b.pixels())
            .filter(|(x, y)| x != y)
            .count()
    };
    assert!(
        got == want,
        "the daemon's setup screen is not the one drawn for fingerprint {fp} and code {code}: \
         {} of {} pixels differ",
        differ(&got, &want),
        got.pixels().len()
    );

    // A fingerprint one digit off, first or last, draws another frame: every digit is shown.
    for other in [other_digit(&fp, 0), other_digit(&fp, fp.len() - 1)] {
        let frame = drawn(&other);
        assert!(
            differ(&got, &frame) > 0,
            "the screen for {other} looks the same as the daemon's"
        );
    }
}
