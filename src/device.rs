//! Who this device is on the LAN: its stable id, host name and addresses, and the names a
//! request may call it by (the DNS-rebinding guard and the certificate's names use them).
//!
//! # The device id
//!
//! 16 lowercase hex digits (64 random bits), made the first time wagate needs it and kept in
//! `data_dir/device-id`. It never changes while that file lives: discovery announces it, and
//! `wagate info` and `/api/health` show it, so a client can tell two appliances apart even
//! when their addresses or names change. Deleting the file (or the data directory) makes a
//! new one on the next start.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The file that holds the device id, in the data directory.
pub const DEVICE_ID_FILE: &str = "device-id";

/// Why the device id could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot read or write the device id {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the device id file {path} does not hold a device id (16 hex digits); delete it to make a new one"
    )]
    Invalid { path: PathBuf },
}

fn is_device_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The device id kept in `data_dir`, if one was made.
pub fn read_device_id(data_dir: &Path) -> Result<Option<String>, DeviceError> {
    let path = data_dir.join(DEVICE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim();
            if is_device_id(id) {
                Ok(Some(id.to_owned()))
            } else {
                Err(DeviceError::Invalid { path })
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DeviceError::Io { path, source }),
    }
}

/// The device id kept in `data_dir`, made (and kept) now if there is none.
pub fn device_id(data_dir: &Path) -> Result<String, DeviceError> {
    if let Some(id) = read_device_id(data_dir)? {
        return Ok(id);
    }
    let path = data_dir.join(DEVICE_ID_FILE);
    let io = |source| DeviceError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let id = format!("{:016x}", rand::random::<u64>());
    // create_new: if two processes race, the first file wins and both read it back.
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(format!("{id}\n").as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_device_id(data_dir)?.ok_or_else(|| DeviceError::Invalid { path: path.clone() })
        }
        Err(e) => Err(io(e)),
    }
}

/// The kernel's host name (`/proc/sys/kernel/hostname`), lowercase; `wagate` when it cannot
/// be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "wagate".to_owned())
}

/// Every address of every interface, loopback included.
pub fn all_addresses() -> Vec<IpAddr> {
    match if_addrs::get_if_addrs() {
        Ok(v) => {
            let mut all: Vec<IpAddr> = v.into_iter().map(|i| i.ip()).collect();
            all.sort_by_key(|ip| (ip.is_ipv6(), *ip));
            all.dedup();
            all
        }
        Err(e) => {
            tracing::debug!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    }
}

/// The host names a request may call this device by: `localhost`, the host name, its
/// `.local` name and the configured `extra` names (`api.host_names`), lowercase, without a
/// trailing dot. Addresses are accepted besides these (see [`host_is_device`]).
pub fn device_names(extra: &[String]) -> Vec<String> {
    let host = hostname();
    let mut names = vec!["localhost".to_owned(), format!("{host}.local"), host];
    names.extend(extra.iter().map(|n| normalize_name(n)));
    names.dedup();
    names
}

fn normalize_name(n: &str) -> String {
    n.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether a `Host` header value names this device: one of `names` or one of `addresses`
/// (IPv6 in brackets), with or without a port.
pub fn host_is_device(host: &str, names: &[String], addresses: &[IpAddr]) -> bool {
    let host = host.trim();
    // Split off the port: "[v6]:port", "[v6]", "name:port", "v4:port", "name".
    let bare = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, tail)) if tail.is_empty() || valid_port(tail) => ip,
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if valid_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        }
    };
    if bare.is_empty() {
        return false;
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        // An IPv4-mapped IPv6 address names the same interface.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        return addresses.contains(&ip);
    }
    let bare = normalize_name(bare);
    names.contains(&bare)
}

fn valid_port(tail: &str) -> bool {
    tail.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_device_id(dir.path()).unwrap(), None);
        let id = device_id(dir.path()).unwrap();
        assert!(is_device_id(&id), "{id}");
        assert_eq!(device_id(dir.path()).unwrap(), id);
        assert_eq!(read_device_id(dir.path()).unwrap(), Some(id));
    }

    #[test]
    fn a_damaged_device_id_is_an_error_not_a_new_id() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DEVICE_ID_FILE), "not an id\n").unwrap();
        let e = device_id(dir.path()).unwrap_err();
        assert!(matches!(e, DeviceError::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("delete it"), "{e}");
    }

    #[test]
    fn host_headers_that_name_the_device() {
        let names = vec![
            "localhost".to_owned(),
            "gate.local".to_owned(),
            "gate".to_owned(),
            "wagate.example.lan".to_owned(),
        ];
        let addrs: Vec<IpAddr> = vec![
            "127.0.0.1".parse().unwrap(),
            "192.168.1.23".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        ];
        for ok in [
            "gate",
            "GATE.local",
            "gate.local.",
            "gate:8443",
            "wagate.example.lan:443",
            "localhost:8080",
            "192.168.1.23",
            "192.168.1.23:8080",
            "[fd00::1]",
            "[fd00::1]:8443",
            "[::ffff:192.168.1.23]:80",
        ] {
            assert!(host_is_device(ok, &names, &addrs), "{ok} should pass");
        }
        for bad in [
            "",
            "evil.example.com",
            "evil.example.com:8080",
            "gate.evil.com",
            "192.168.1.24:8080",
            "[fd00::2]:80",
            "fd00::1",
            "gate:",
            "gate:80x",
            "[fd00::1]x",
            "10.0.0.1.nip.io",
        ] {
            assert!(!host_is_device(bad, &names, &addrs), "{bad} should fail");
        }
    }
}
