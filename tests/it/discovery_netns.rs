//! mDNS discovery across a real link: two network namespaces joined by a veth pair, made by
//! `.ci/mdns-netns.sh` (root, `ip netns`), which then runs this test with `--ignored`.
//!
//! The `wagate` binary runs in namespace A (10.77.0.1, HTTPS self-signed). The test browses
//! from namespace B (10.77.0.2: a thread moved there with setns(2), whose mdns-sd daemon thread
//! inherits it), so every packet crosses the veth link as real multicast. What it proves:
//!
//! 1. `_wagate._tcp.local.` and `_https._tcp.local.` resolve from the other host, with the
//!    configured instance name, the API port, the address 10.77.0.1, and the TXT records
//!    `version`, `id` (= `DATA_DIR/device-id`), `tls=1`, `cert_sha256` (= the fingerprint of
//!    `DATA_DIR/tls-cert.pem`).
//! 2. What was discovered is enough to reach the device safely: a client in B connects to the
//!    announced address and port, pins the announced fingerprint, and `/api/health` answers
//!    with the announced device id.
//! 3. On SIGTERM wagate says goodbye: browsers see the service removed.
//! 4. With `discovery.enabled = false` nothing is announced while the API runs.

use crate::common::pinned;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::BIN;
use mdns_sd::{ServiceDaemon, ServiceEvent};

/// Names and addresses `.ci/mdns-netns.sh` sets up.
const NS_DEVICE: &str = "wagate-mdns-a";
const NS_CLIENT: &str = "wagate-mdns-b";
const DEVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PORT: u16 = 18443;
const INSTANCE: &str = "wagate netns test";

fn start_device(data: &Path, discovery: bool) -> Child {
    let dead = "ws://127.0.0.1:9/ws/chat";
    Command::new("ip")
        .args(["netns", "exec", NS_DEVICE, BIN, "run"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WAGATE_DATA_DIR", data)
        .env("WAGATE_API_ADDR", format!("0.0.0.0:{PORT}"))
        .env("WAGATE_API__TLS", "self-signed")
        .env("WAGATE_WHATSAPP_URL", dead)
        .env("WAGATE_DISPLAY__BACKEND", "none")
        .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
        .env("WAGATE_SESSIONS__AUTOSTART", "false")
        .env("WAGATE_DISCOVERY__ENABLED", discovery.to_string())
        .env("WAGATE_DISCOVERY__INSTANCE_NAME", INSTANCE)
        .env("WAGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Run `f` on a thread inside the client namespace.
fn in_client_ns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/run/netns/{NS_CLIENT}"))
            .expect("the namespaces are missing: run .ci/mdns-netns.sh");
        // SAFETY: setns on a valid namespace fd changes only this thread's network namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap()
}

/// What a browse saw.
#[derive(Debug, Clone)]
struct Seen {
    fullname: String,
    port: u16,
    v4: Vec<Ipv4Addr>,
    txt: std::collections::HashMap<String, String>,
}

/// Browse `ty` from the client namespace for at most `window`: the instance resolved (stops
/// there unless `want_removed`), and whether it was then removed.
fn browse(ty: &'static str, window: Duration, want_removed: bool) -> (Option<Seen>, bool) {
    in_client_ns(move || {
        let mdns = ServiceDaemon::new().unwrap();
        let rx = mdns.browse(ty).unwrap();
        let deadline = Instant::now() + window;
        let mut seen = None;
        let mut removed = false;
        while Instant::now() < deadline {
            let Ok(ev) = rx.recv_timeout(Duration::from_millis(200)) else {
                continue;
            };
            match ev {
                ServiceEvent::ServiceResolved(r) if r.get_fullname().starts_with(INSTANCE) => {
                    // The veth link has an IPv6 link-local address too: the service can
                    // resolve first with only that one, and again when the A record arrives.
                    let v4: Vec<Ipv4Addr> = r.get_addresses_v4().into_iter().collect();
                    let has_v4 = !v4.is_empty();
                    seen = Some(Seen {
                        fullname: r.get_fullname().to_owned(),
                        port: r.get_port(),
                        v4,
                        txt: r.get_properties().clone().into_property_map_str(),
                    });
                    if has_v4 && !want_removed {
                        break;
                    }
                }
                ServiceEvent::ServiceRemoved(_, name) if name.starts_with(INSTANCE) => {
                    removed = true;
                    break;
                }
                _ => {}
            }
        }
        let _ = mdns.shutdown();
        (seen, removed)
    })
}

#[test]
#[ignore = "needs root and the namespaces of .ci/mdns-netns.sh, which runs it"]
fn announcement_crosses_the_link_and_leads_to_the_pinned_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_owned();
    let mut device = start_device(&data, true);
    let result = std::panic::catch_unwind(|| {
        let (seen, _) = browse("_wagate._tcp.local.", Duration::from_secs(20), false);
        let seen = seen.expect("_wagate._tcp not resolved from the other namespace in 20 s");
        eprintln!("resolved: {seen:?}");
        assert!(seen.fullname.starts_with(INSTANCE), "{}", seen.fullname);
        assert_eq!(seen.port, PORT);
        assert!(seen.v4.contains(&DEVICE_IP), "addresses {:?}", seen.v4);

        let id = std::fs::read_to_string(data.join("device-id")).unwrap();
        let mut cfg = wagate::config::Config::default();
        cfg.store.data_dir = data.clone();
        cfg.api.tls = wagate::config::TlsMode::SelfSigned;
        let fp = wagate::net::api::tls::read_fingerprint(&cfg)
            .unwrap()
            .unwrap();
        assert_eq!(seen.txt.get("id").map(String::as_str), Some(id.trim()));
        assert_eq!(
            seen.txt.get("version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(seen.txt.get("tls").map(String::as_str), Some("1"));
        assert_eq!(seen.txt.get("cert_sha256"), Some(&fp));

        let (https, _) = browse("_https._tcp.local.", Duration::from_secs(20), false);
        let https = https.expect("_https._tcp not resolved");
        assert_eq!(https.port, PORT);
        assert_eq!(https.txt.get("cert_sha256"), Some(&fp));

        // Reach the device with nothing but what the announcement said.
        let (addr, pin, want_id) = (
            SocketAddr::new(IpAddr::V4(seen.v4[0]), seen.port),
            seen.txt["cert_sha256"].clone(),
            seen.txt["id"].clone(),
        );
        let health = in_client_ns(move || {
            pinned::request(addr, &addr.to_string(), &pin, "GET", "/api/health", None)
        })
        .expect("pinned HTTPS to the announced address");
        assert_eq!(health.status, 200);
        assert_eq!(health.json()["device_id"], want_id.as_str());
    });
    if let Err(e) = result {
        stop(&mut device);
        std::panic::resume_unwind(e);
    }

    // Goodbye: a browser that sees the service sees it removed when wagate stops.
    let (tx, rx) = mpsc::channel();
    let watcher = std::thread::spawn(move || {
        let r = browse("_wagate._tcp.local.", Duration::from_secs(30), true);
        let _ = tx.send(());
        r
    });
    std::thread::sleep(Duration::from_secs(3)); // let the watcher resolve it first
    stop(&mut device);
    let _ = rx.recv_timeout(Duration::from_secs(40));
    let (seen, removed) = watcher.join().unwrap();
    assert!(seen.is_some(), "the watcher never saw the service");
    assert!(removed, "no goodbye (service removal) after SIGTERM");

    // Off by config: the API answers across the link, nothing is announced.
    let mut quiet = start_device(&data, false);
    let up = in_client_ns(|| {
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = SocketAddr::from((DEVICE_IP, PORT));
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    });
    let (seen, _) = browse("_wagate._tcp.local.", Duration::from_secs(6), false);
    stop(&mut quiet);
    assert!(up, "the API did not come up with discovery off");
    assert!(
        seen.is_none(),
        "announced with discovery.enabled = false: {seen:?}"
    );
}
