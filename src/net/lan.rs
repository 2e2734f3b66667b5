//! The device on the LAN, as the daemon starts it: its id, the API's certificate
//! ([`super::api::tls`]), serving over HTTP or HTTPS, and the mDNS announcement
//! ([`super::discovery`]). Also what `wagate info` prints.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Serialize;

use super::api::tls::{self, TlsError, TlsMaterial};
use super::api::{self, ApiState, LanInfo};
use super::discovery::{self, Announcement, Announcer};
use crate::config::{Config, TlsMode};
use crate::device::{self, DeviceError};

/// Why the daemon cannot bring the device onto the LAN.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("api.tls = \"{}\": {source}", tls_name(*.mode))]
    Tls { mode: TlsMode, source: TlsError },
}

fn tls_name(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::SelfSigned => "self-signed",
        TlsMode::Files => "files",
        TlsMode::Off => "off",
    }
}

/// The device's id and certificate, and the announcement once started.
pub struct Lan {
    pub device_id: String,
    pub tls: Option<TlsMaterial>,
    announcer: Option<Announcer>,
}

impl Lan {
    /// The device id (made on first start) and the certificate for `api.tls` (the self-signed
    /// one made on first start, for the device's names and addresses).
    pub fn prepare(cfg: &Config) -> Result<Lan, LanError> {
        let device_id = device::device_id(&cfg.store.data_dir)?;
        let names = device::device_names(&cfg.api.host_names);
        let addresses: Vec<IpAddr> = device::all_addresses()
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect();
        let tls = tls::load_or_create(cfg, &names, &addresses).map_err(|source| LanError::Tls {
            mode: cfg.api.tls,
            source,
        })?;
        if let Some(t) = &tls {
            tracing::info!(path = %t.cert_path.display(), sha256 = %t.fingerprint, "API certificate");
        }
        Ok(Lan {
            device_id,
            tls,
            announcer: None,
        })
    }

    /// The certificate's fingerprint when the API speaks HTTPS.
    pub fn fingerprint(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.fingerprint.clone())
    }

    /// What the API tells about the device (`/api/health`) and the host guard's names.
    pub fn api_info(&self, cfg: &Config) -> LanInfo {
        LanInfo {
            device_id: Some(self.device_id.clone()),
            cert_sha256: self.fingerprint(),
            host_names: cfg.api.host_names.clone(),
        }
    }

    /// Serve the API on `listener` (HTTPS when a certificate is loaded) until `shutdown`.
    pub fn serve(
        &self,
        listener: tokio::net::TcpListener,
        state: ApiState,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static {
        let config = self.tls.as_ref().map(|t| t.config.clone());
        async move {
            match config {
                Some(c) => api::serve_tls_with_shutdown(listener, c, state, shutdown).await,
                None => api::serve_with_shutdown(listener, state, shutdown).await,
            }
        }
    }

    /// Announce the API listening on `local` over mDNS unless `discovery.enabled = false`.
    /// A failure is logged: the gateway works without being discoverable.
    pub fn announce(&mut self, cfg: &Config, local: SocketAddr) {
        if !cfg.discovery.enabled {
            return;
        }
        let host_name = device::hostname();
        let instance = match cfg.discovery.instance_name.as_str() {
            "" => host_name.clone(),
            name => name.to_owned(),
        };
        let a = Announcement {
            instance,
            host_name,
            port: local.port(),
            bind: cfg.api.addr.ip(),
            device_id: self.device_id.clone(),
            cert_sha256: self.fingerprint(),
        };
        match discovery::announce(&a) {
            Ok(x) => self.announcer = Some(x),
            Err(e) => tracing::error!(error = %e, "cannot announce the device on mDNS"),
        }
    }

    /// Stop the announcement (goodbye packets).
    pub async fn stop(mut self) {
        if let Some(a) = self.announcer.take() {
            a.stop().await;
        }
    }
}

/// `wagate info`: what a user needs to reach and pin this device.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// `None` before the first start made one.
    pub device_id: Option<String>,
    pub version: &'static str,
    pub host_name: String,
    /// LAN addresses the API answers on.
    pub addresses: Vec<IpAddr>,
    /// One URL per address, then `<hostname>.local`.
    pub api_urls: Vec<String>,
    pub tls: TlsMode,
    /// `None` without TLS, or before the first start made the self-signed certificate.
    pub cert_sha256: Option<String>,
    pub cert_path: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub discovery: bool,
}

/// Read (never make) what [`Lan::prepare`] keeps: safe while the daemon runs.
pub fn info(cfg: &Config, addresses: Vec<IpAddr>) -> Result<DeviceInfo, LanError> {
    let device_id = device::read_device_id(&cfg.store.data_dir)?;
    let cert_sha256 = tls::read_fingerprint(cfg).map_err(|source| LanError::Tls {
        mode: cfg.api.tls,
        source,
    })?;
    let host_name = device::hostname();
    let scheme = match cfg.api.tls {
        TlsMode::Off => "http",
        _ => "https",
    };
    let port = cfg.api.addr.port();
    let mut api_urls: Vec<String> = addresses
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}/api"),
            IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}/api"),
        })
        .collect();
    if cfg.api.addr.ip().is_unspecified() {
        api_urls.push(format!("{scheme}://{host_name}.local:{port}/api"));
    }
    Ok(DeviceInfo {
        device_id,
        version: env!("CARGO_PKG_VERSION"),
        host_name,
        addresses,
        api_urls,
        tls: cfg.api.tls,
        cert_path: tls::cert_path(cfg),
        cert_sha256,
        data_dir: cfg.store.data_dir.clone(),
        discovery: cfg.discovery.enabled,
    })
}

impl std::fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_owned());
        writeln!(
            f,
            "device id:    {}",
            or(&self.device_id, "(made on first start)")
        )?;
        writeln!(f, "version:      {}", self.version)?;
        writeln!(
            f,
            "host name:    {} ({}.local)",
            self.host_name, self.host_name
        )?;
        let addrs: Vec<String> = self.addresses.iter().map(ToString::to_string).collect();
        writeln!(
            f,
            "addresses:    {}",
            if addrs.is_empty() {
                "(no network)".to_owned()
            } else {
                addrs.join(", ")
            }
        )?;
        for (i, url) in self.api_urls.iter().enumerate() {
            let label = if i == 0 { "API:" } else { "" };
            writeln!(f, "{label:<13} {url}")?;
        }
        let tls = match self.tls {
            TlsMode::Off => "off (plain HTTP)",
            mode => tls_name(mode),
        };
        writeln!(f, "TLS:          {tls}")?;
        if self.tls != TlsMode::Off {
            writeln!(
                f,
                "certificate:  SHA256 {}",
                or(&self.cert_sha256, "(made on first start)")
            )?;
            if let Some(p) = &self.cert_path {
                writeln!(f, "              {}", p.display())?;
            }
        }
        writeln!(
            f,
            "discovery:    {}",
            if self.discovery {
                "mDNS _wagate._tcp"
            } else {
                "off"
            }
        )?;
        write!(f, "data dir:     {}", self.data_dir.display())
    }
}
