//! The real `wagate run` process pointed at wa-mock: its environment (millisecond pacing,
//! wa-mock's media certificate), start, SIGKILL, and pairing its default session through the
//! API as a user would (the mock phone scans the QR the API shows).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;
use wa_mock::MockServer;

use super::{call, get};

/// The binary under test; `CRASH_BIN` names a copy instead (so a long crash run is not
/// disturbed by a rebuild).
pub fn bin() -> String {
    std::env::var("CRASH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_wagate").to_string())
}

pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The running daemon; killed when dropped, so a failing test leaves no process behind.
pub struct Daemon(pub Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        let rc = unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9");
        self.0.wait().unwrap();
    }

    /// Still running (not exited).
    pub fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

/// Ask a daemon to stop as systemd does (SIGTERM) and wait up to 15 s for it to exit.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "wagate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One wagate installation: its data directory, API address and the mock it talks to.
pub struct Gate {
    pub data: PathBuf,
    /// Where the daemon's logs (`run<n>.log`) and wa-mock's certificate go.
    pub logs: PathBuf,
    pub api: String,
    ws: String,
    ca: PathBuf,
    runs: u32,
    /// More environment for `wagate` (e.g. `WAGATE_MQTT__URL`).
    pub env: Vec<(String, String)>,
}

impl Gate {
    pub fn new(data: &Path, logs: &Path, mock: &MockServer) -> Gate {
        let ca = logs.join("wa-mock-media.pem");
        std::fs::write(&ca, mock.media_cert_pem().unwrap()).unwrap();
        Gate {
            data: data.to_path_buf(),
            logs: logs.to_path_buf(),
            api: free_addr(),
            ws: mock.ws_url(),
            ca,
            runs: 0,
            env: Vec::new(),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.api)
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WAGATE_DATA_DIR", &self.data)
            .env("WAGATE_API_ADDR", &self.api)
            .env("WAGATE_WHATSAPP_URL", &self.ws)
            .env("WAGATE_WHATSAPP__TRUST_CA_FILE", &self.ca)
            .env("WAGATE_DISPLAY__BACKEND", "none")
            .env("WAGATE_DISPLAY__TERMINAL_QR", "false")
            // Millisecond pacing: these runs are about faults, not the anti-ban policy.
            .env("WAGATE_PACING__MIN_DELAY_MS", "1")
            .env("WAGATE_PACING__MAX_DELAY_MS", "20")
            .env("WAGATE_PACING__TYPING", "false")
            .env("WAGATE_PACING__PER_MINUTE", "100000")
            .env("WAGATE_PACING__PER_HOUR", "100000")
            .env("WAGATE_PACING__PER_DAY", "100000")
            .env("WAGATE_PACING__WARMUP", "[]")
            .env("WAGATE_LOG", "info");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// An admin key, made before the first start (which closes first-boot setup).
    pub fn admin_key(&self) -> String {
        let out = self
            .cmd()
            .args(["key", "create", "--scope", "admin"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Start `wagate run`, logging to `logs/run<n>.log`, and wait for its health answer.
    pub fn start(&mut self) -> Daemon {
        self.runs += 1;
        let log = std::fs::File::create(self.log(self.runs)).unwrap();
        let child = Daemon(
            self.cmd()
                .arg("run")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        let (api, base) = (self.api.clone(), self.base());
        wait_until("wagate to come up", Duration::from_secs(30), || {
            std::net::TcpStream::connect(&api).is_ok()
                && get(&format!("{base}/api/health"), None).status == 200
        });
        child
    }

    pub fn log(&self, run: u32) -> PathBuf {
        self.logs.join(format!("run{run}.log"))
    }

    /// Every run's log so far, concatenated.
    pub fn all_logs(&self) -> String {
        (1..=self.runs)
            .map(|r| std::fs::read_to_string(self.log(r)).unwrap_or_default())
            .collect()
    }

    /// Pair the default session: read its QR from the API, the mock phone scans it.
    pub fn pair(&self, rt: &Runtime, mock: &MockServer, key: &str) {
        let base = self.base();
        let mut code = None;
        wait_until("a QR code", Duration::from_secs(40), || {
            let r = call(
                "GET",
                &format!("{base}/api/sessions/default/qr"),
                Some(key),
                &[("Accept", "application/json")],
                None,
            );
            if r.status == 200 {
                code = r.json()["code"].as_str().map(str::to_string);
            }
            code.is_some()
        });
        rt.block_on(mock.scan(&code.unwrap())).unwrap();
        wait_until("the session connected", Duration::from_secs(40), || {
            self.connected(key)
        });
    }

    pub fn connected(&self, key: &str) -> bool {
        get(&format!("{}/api/sessions/default", self.base()), Some(key)).json()["state"]
            == "connected"
    }
}
