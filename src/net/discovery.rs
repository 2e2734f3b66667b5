//! mDNS/DNS-SD: the device announces itself on the LAN (`[discovery]`).
//!
//! Two services with the same instance name (`discovery.instance_name`, else the host name)
//! on the host `<hostname>.local`:
//!
//! - `_wagate._tcp.local.`: always;
//! - `_https._tcp.local.`: when the API speaks HTTPS, so generic browsers list it.
//!
//! Both carry the TXT records `version` (wagate's), `id` (the device id), `tls` (`1` or `0`),
//! `path` (`/api`) and, with HTTPS, `cert_sha256` (the certificate fingerprint a client can
//! pin before it first connects). Addresses follow the interfaces as they change, unless
//! `api.addr` names one address, which is then the only one announced. mdns-sd runs its own
//! thread; [`Announcer::stop`] sends the goodbye packets and ends it.

use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};

/// The service type wagate announces.
pub const SERVICE_TYPE: &str = "_wagate._tcp.local.";
/// The generic HTTPS service type, announced too when TLS is on.
pub const HTTPS_SERVICE_TYPE: &str = "_https._tcp.local.";

/// Why the announcement could not start.
#[derive(Debug, thiserror::Error)]
#[error("mDNS: {0}")]
pub struct DiscoveryError(#[from] mdns_sd::Error);

/// What to announce.
#[derive(Debug, Clone)]
pub struct Announcement {
    /// The DNS-SD instance name.
    pub instance: String,
    /// The host name, without `.local`.
    pub host_name: String,
    pub port: u16,
    /// `api.addr`'s address; unspecified = every interface's (kept up to date).
    pub bind: IpAddr,
    pub device_id: String,
    /// The certificate fingerprint when the API speaks HTTPS.
    pub cert_sha256: Option<String>,
}

impl Announcement {
    /// The TXT records, in order.
    pub fn txt(&self) -> Vec<(&'static str, String)> {
        let mut txt = vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("id", self.device_id.clone()),
            (
                "tls",
                if self.cert_sha256.is_some() { "1" } else { "0" }.to_owned(),
            ),
            ("path", "/api".to_owned()),
        ];
        if let Some(fp) = &self.cert_sha256 {
            txt.push(("cert_sha256", fp.clone()));
        }
        txt
    }
}

/// The running announcement.
pub struct Announcer {
    daemon: ServiceDaemon,
    fullnames: Vec<String>,
}

/// Start announcing `a`.
pub fn announce(a: &Announcement) -> Result<Announcer, DiscoveryError> {
    let daemon = ServiceDaemon::new()?;
    let host = format!("{}.local.", a.host_name);
    let txt = a.txt();
    let mut types = vec![SERVICE_TYPE];
    if a.cert_sha256.is_some() {
        types.push(HTTPS_SERVICE_TYPE);
    }
    let mut fullnames = Vec::new();
    for ty in types {
        let info = if a.bind.is_unspecified() {
            ServiceInfo::new(ty, &a.instance, &host, (), a.port, txt.as_slice())?.enable_addr_auto()
        } else {
            ServiceInfo::new(ty, &a.instance, &host, a.bind, a.port, txt.as_slice())?
        };
        fullnames.push(info.get_fullname().to_owned());
        if let Err(e) = daemon.register(info) {
            let _ = daemon.shutdown();
            return Err(e.into());
        }
    }
    tracing::info!(instance = %a.instance, host = %host, port = a.port, "announcing on mDNS");
    Ok(Announcer { daemon, fullnames })
}

impl Announcer {
    /// The full DNS-SD names announced.
    pub fn fullnames(&self) -> &[String] {
        &self.fullnames
    }

    /// Say goodbye (so browsers drop the device at once) and stop mDNS.
    pub async fn stop(self) {
        let done = tokio::task::spawn_blocking(move || {
            for name in &self.fullnames {
                if let Ok(rx) = self.daemon.unregister(name) {
                    let _ = rx.recv_timeout(Duration::from_secs(1));
                }
            }
            if let Ok(rx) = self.daemon.shutdown() {
                let _ = rx.recv_timeout(Duration::from_secs(1));
            }
        });
        let _ = done.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_records_name_version_id_and_certificate() {
        let mut a = Announcement {
            instance: "gate".into(),
            host_name: "gate".into(),
            port: 8443,
            bind: IpAddr::from([0, 0, 0, 0]),
            device_id: "0123456789abcdef".into(),
            cert_sha256: None,
        };
        let txt = a.txt();
        assert!(txt.contains(&("id", "0123456789abcdef".into())));
        assert!(txt.contains(&("tls", "0".into())));
        assert!(txt.iter().all(|(k, _)| *k != "cert_sha256"));
        a.cert_sha256 = Some("AB:CD".into());
        let txt = a.txt();
        assert!(txt.contains(&("tls", "1".into())));
        assert!(txt.contains(&("cert_sha256", "AB:CD".into())));
        assert!(txt.contains(&("version", env!("CARGO_PKG_VERSION").into())));
    }
}
