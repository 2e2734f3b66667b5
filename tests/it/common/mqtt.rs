//! A real MQTT broker (Debian's `mosquitto`) on a loopback port, and its own command-line
//! clients (`mosquitto_sub`, `mosquitto_pub`, MQTT 5) as the independent other side: what
//! they print is what any subscriber gets from the broker.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::daemon::{free_addr, wait_until};

/// Whether the broker and its clients are installed (`.ci/run` installs them).
pub fn available() -> bool {
    ["mosquitto", "mosquitto_sub", "mosquitto_pub"]
        .iter()
        .all(|b| which(b).is_some())
}

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// A broker with persistence (as Debian configures it), so a restart keeps retained
/// messages and the sessions of clients that asked to keep theirs.
pub struct Broker {
    pub port: u16,
    /// With [`Broker::start_tls`]: the TLS listener's port, the CA that issued its
    /// certificate (PEM file) and the certificate's SHA-256 (hex).
    pub tls: Option<(u16, PathBuf, String)>,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    free_addr().rsplit(':').next().unwrap().parse().unwrap()
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::configure(dir, None)
    }

    /// A plain listener and a TLS one whose certificate (for 127.0.0.1) a fresh CA issued.
    pub fn start_tls(dir: &Path) -> Broker {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        let sha = wagate::net::api::tls::fingerprint(leaf.der());
        let port = free_port();
        let conf = format!(
            "listener {port} 127.0.0.1\ncertfile {d}/cert.pem\nkeyfile {d}/key.pem\n",
            d = dir.display()
        );
        let mut b = Broker::configure(dir, Some(conf));
        b.tls = Some((port, dir.join("ca.pem"), sha));
        b
    }

    fn configure(dir: &Path, extra: Option<String>) -> Broker {
        let port = free_port();
        let mut conf = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\n",
            dir.display()
        );
        // Run as whoever runs the test (as root, mosquitto would drop to a `mosquitto` user
        // that may not exist).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            conf.push_str("user root\n");
        }
        conf.push_str(&extra.unwrap_or_default());
        std::fs::write(dir.join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            port,
            tls: None,
            dir: dir.to_path_buf(),
            child: None,
        };
        b.run();
        b
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))
            .unwrap();
        let child = Command::new(which("mosquitto").expect("mosquitto is installed"))
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stop it as systemd would (SIGTERM: it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message a subscriber printed.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    /// MQTT 5 properties, `correlation-data` and `response-topic` (as text), when set.
    pub properties: serde_json::Value,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {:?}", self.topic, self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// `mosquitto_sub` at QoS 1 on some topics, collecting what it prints. Payloads travel as
/// hex (so binary ones, the QR's PNG, survive).
pub struct Sub {
    child: Child,
    got: Arc<Mutex<Vec<Msg>>>,
}

impl Sub {
    /// `session`: a client id whose session the broker keeps (queued messages survive a
    /// disconnect and a broker restart); `None` for a clean one.
    pub fn start(port: u16, topics: &[&str], session: Option<&str>) -> Sub {
        let mut cmd = Command::new(which("mosquitto_sub").expect("mosquitto_sub is installed"));
        cmd.args(["-V", "mqttv5", "-h", "127.0.0.1", "-q", "1"])
            .args(["-p", &port.to_string()])
            // Topic, hex payload, correlation data, response topic.
            .args(["-F", "%t\t%x\t%D\t%R"]);
        if let Some(id) = session {
            cmd.args(["-i", id, "-c", "-x", "86400"]);
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let probe = format!(
            "probe/{}/{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        for t in topics.iter().copied().chain([probe.as_str()]) {
            cmd.args(["-t", t]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { return };
                let line = String::from_utf8_lossy(&line);
                let parts: Vec<&str> = line.splitn(4, '\t').collect();
                let [topic, hex, correlation, response] = parts[..] else {
                    continue;
                };
                let payload = (0..hex.len() / 2)
                    .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                let mut properties = serde_json::Map::new();
                for (name, v) in [
                    ("correlation-data", correlation),
                    ("response-topic", response),
                ] {
                    if !v.is_empty() {
                        properties.insert(name.into(), v.into());
                    }
                }
                let properties = serde_json::Value::Object(properties);
                g.lock().unwrap().push(Msg {
                    topic: topic.to_string(),
                    payload,
                    properties,
                });
            }
        });
        let sub = Sub { child, got };
        // Subscribed once a probe published on its own topic comes back.
        wait_until(
            "mosquitto_sub to subscribe",
            Duration::from_secs(10),
            || {
                publish(port, &probe, b"probe", &[]);
                std::thread::sleep(Duration::from_millis(100));
                sub.all().iter().any(|m| m.topic == probe)
            },
        );
        sub
    }

    pub fn all(&self) -> Vec<Msg> {
        self.got.lock().unwrap().clone()
    }

    /// The messages on topics matching `f`.
    pub fn on(&self, f: impl Fn(&str) -> bool) -> Vec<Msg> {
        self.all().into_iter().filter(|m| f(&m.topic)).collect()
    }

    /// Wait until a message matches `f`; return the first that does.
    pub fn wait_for(&self, what: &str, timeout: Duration, f: impl Fn(&Msg) -> bool) -> Msg {
        let mut found = None;
        wait_until(what, timeout, || {
            found = self.all().into_iter().find(|m| f(m));
            found.is_some()
        });
        found.unwrap()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_pub` one retained message at QoS 1.
pub fn retain(port: u16, topic: &str, payload: &[u8]) {
    pub_with(port, topic, payload, &[], true)
}

/// `mosquitto_pub` one message at QoS 1 (MQTT 5), with `-D publish` properties such as
/// `("response-topic", "x")`.
pub fn publish(port: u16, topic: &str, payload: &[u8], props: &[(&str, &str)]) {
    pub_with(port, topic, payload, props, false)
}

fn pub_with(port: u16, topic: &str, payload: &[u8], props: &[(&str, &str)], retained: bool) {
    let mut cmd = Command::new(which("mosquitto_pub").expect("mosquitto_pub is installed"));
    cmd.args(["-V", "mqttv5", "-h", "127.0.0.1", "-q", "1"])
        .args(["-p", &port.to_string(), "-t", topic, "-s"]);
    if retained {
        cmd.arg("-r");
    }
    for (k, v) in props {
        cmd.args(["-D", "publish", k, v]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(payload).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
