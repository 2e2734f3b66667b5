//! Configuration: one TOML file, `WAGATE_*` environment overrides, dev defaults.
//!
//! # Where values come from (lowest to highest precedence)
//!
//! 1. Built-in dev defaults ([`Config::default`]): wagate runs from a checkout with no file.
//! 2. The TOML file: `--config PATH` (passed to [`load`]), else `$WAGATE_CONFIG`, else
//!    [`DEFAULT_CONFIG_PATH`] if that file exists, else no file. A file named explicitly
//!    (flag or `WAGATE_CONFIG`) must exist.
//! 3. Environment variables: `WAGATE_<SECTION>__<KEY>` for every key (case-insensitive,
//!    double underscore between the parts), plus the short names in [`SHORT_ENV_NAMES`].
//!
//! # How a load works
//!
//! The file becomes a `toml::Table`, the environment overrides are merged into it, and the
//! result is deserialized in one pass through `serde_path_to_error` into structs that are all
//! `#[serde(deny_unknown_fields, default)]`: a missing key takes its default, an unknown key
//! or a badly typed value is refused with its dotted key path. A `validate` pass then checks
//! ranges and cross-field rules. Every error names the key and where its value came from (the
//! file path or the environment variable), so a typo on a headless appliance is one log line
//! away from being fixed.
//!
//! # Adding a section
//!
//! Write one struct (`#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]`,
//! `#[serde(deny_unknown_fields, default)]`, a `Default` impl with the dev defaults) and add
//! one field to [`Config`]. The environment overrides, unknown-key refusal, error provenance
//! and `config check` output all follow from the serde derive. Add its rules to
//! [`Config::validate`] if it has any, and a row per key to `docs/configuration.md`.
//!
//! Secrets (`mqtt.password`): a secret field must never reach [`Config::to_toml_string`] or a
//! log: it is a [`Secret`] (its `Debug` shows `***`), `#[serde(skip_serializing)]`, listed in
//! `SECRET_KEYS` (so its environment value stays text), and exempt from the round-trip test.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The file read when neither `--config` nor `WAGATE_CONFIG` names one (only if it exists).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/wagate/wagate.toml";

/// The environment variable that names the config file (an alternative to `--config`).
pub const CONFIG_PATH_ENV: &str = "WAGATE_CONFIG";

/// Short environment names: (variable, section, key).
pub const SHORT_ENV_NAMES: &[(&str, &str, &str)] = &[
    ("WAGATE_DATA_DIR", "store", "data_dir"),
    ("WAGATE_API_ADDR", "api", "addr"),
    ("WAGATE_WHATSAPP_URL", "whatsapp", "url"),
    ("WAGATE_LOG", "log", "level"),
];

const ENV_PREFIX: &str = "WAGATE_";

/// Keys holding a [`Secret`] (never written back, so absent from the defaults' table).
const SECRET_KEYS: &[&str] = &["mqtt.password"];

/// The largest `webhooks.inline_media_max_bytes` (the download happens before the ack).
pub const MAX_INLINE_MEDIA_BYTES: u64 = 4 * 1024 * 1024;

/// Unix socket paths (`sun_path`) hold 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH_BYTES: usize = 107;

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// The effective configuration of wagate. `Default` is the dev configuration (no file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub api: ApiConfig,
    pub whatsapp: WhatsAppConfig,
    pub display: DisplayConfig,
    pub log: LogConfig,
    pub sessions: SessionsConfig,
    pub webhooks: WebhooksConfig,
    pub discovery: DiscoveryConfig,
    /// `[mqtt]`: the broker endpoint, commands and Home Assistant discovery (off until
    /// `mqtt.url` is set).
    pub mqtt: MqttConfig,
    /// `[pacing]`: the platform's anti-ban defaults; each session may override them
    /// (`PUT /api/sessions/{sid}/settings`). See [`crate::engine::pacing`].
    pub pacing: crate::engine::pacing::Settings,
}

/// `[store]`: the redb file and the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Holds `wagate.redb` and `wagate.sock`. Relative paths are relative to the working
    /// directory of the process.
    pub data_dir: PathBuf,
    /// redb page cache in MiB, `1..=1024`.
    pub cache_size_mb: u32,
    /// Bound of the on-disk cache of downloaded inbound media (`data_dir/media`), in MiB;
    /// the least recently used files are removed beyond it. `1..=65536`.
    pub media_cache_mb: u32,
    /// Finished sent messages and received messages older than this many days are removed
    /// (hourly). At least 1.
    pub message_retention_days: u32,
    /// At most this many finished sent messages, and this many received messages, are kept
    /// (the oldest go first). At least 100.
    pub message_retention_max: u32,
    /// How often the retention runs (it also runs at start), in minutes, `1..=1440`.
    pub retention_interval_minutes: u32,
    /// At most this many of whatsapp-rust's copies of sent messages, and this many message
    /// secrets, are kept per session (the oldest go first). At least 100.
    pub wa_message_records_max: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("./data"),
            cache_size_mb: 4,
            media_cache_mb: 256,
            message_retention_days: 30,
            message_retention_max: 100_000,
            retention_interval_minutes: 60,
            wa_message_records_max: 50_000,
        }
    }
}

/// `[api]`: the LAN HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub addr: SocketAddr,
    pub tls: TlsMode,
    /// Certificate chain (PEM) for `tls = "files"`; unused otherwise. Empty = unset.
    pub tls_cert: PathBuf,
    /// Private key (PEM) for `tls = "files"`; unused otherwise. Empty = unset.
    pub tls_key: PathBuf,
    /// Request body limit in KiB, at least 1.
    pub body_limit_kb: u32,
    /// Seconds a client may take to send a request head (slower ones, and keep-alive
    /// connections idle that long, are closed), 1..=600.
    pub header_timeout_secs: u32,
    /// Names the device answers to besides its addresses, `localhost`, its host name and
    /// `<hostname>.local` (the DNS-rebinding guard; also put in a self-signed certificate).
    pub host_names: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls: TlsMode::Off,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            body_limit_kb: 16384,
            header_timeout_secs: 30,
            host_names: Vec::new(),
        }
    }
}

/// How the API serves TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// A certificate generated on first start and kept in the data directory.
    SelfSigned,
    /// `api.tls_cert` and `api.tls_key` from disk.
    Files,
    /// Plain HTTP.
    Off,
}

/// `[whatsapp]`: how the engine reaches WhatsApp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsAppConfig {
    /// WebSocket endpoint, `ws://` or `wss://` (tests point it at wa-mock).
    pub url: String,
    /// The WhatsApp Web client version announced at login; fixed here so the client never
    /// fetches one at start.
    pub version: WaVersion,
    pub push_name: String,
    /// A PEM certificate the media HTTP client trusts instead of the public roots: wa-mock's
    /// media host. Only a build with the `trust-wa-mock` feature accepts it.
    pub trust_ca_file: PathBuf,
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        WhatsAppConfig {
            url: "wss://web.whatsapp.com/ws/chat".to_owned(),
            version: WaVersion(
                crate::engine::DEFAULT_VERSION.0,
                crate::engine::DEFAULT_VERSION.1,
                crate::engine::DEFAULT_VERSION.2,
            ),
            push_name: "wagate".to_owned(),
            trust_ca_file: PathBuf::new(),
        }
    }
}

/// A WhatsApp Web version `a.b.c`; written as that string in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WaVersion(pub u32, pub u32, pub u32);

impl WaVersion {
    pub fn tuple(self) -> (u32, u32, u32) {
        (self.0, self.1, self.2)
    }
}

impl fmt::Display for WaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl FromStr for WaVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("invalid version {s:?}: expected \"a.b.c\" with three unsigned integers");
        let mut parts = s.split('.').map(|p| {
            // u32::from_str accepts a leading '+'; a version does not.
            if p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse::<u32>().ok()
            } else {
                None
            }
        });
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(a)), Some(Some(b)), Some(Some(c)), None) => Ok(WaVersion(a, b, c)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for WaVersion {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<WaVersion> for String {
    fn from(v: WaVersion) -> String {
        v.to_string()
    }
}

/// `[display]`: the pairing/status screen.
///
/// The SPI keys (`model` .. `button_pin`) matter only with `backend = "spi"`; their defaults
/// are the Waveshare 1.3" LCD HAT (ST7789, 240x240) on a Raspberry Pi.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplayConfig {
    pub backend: DisplayBackend,
    /// Print the QR in the terminal while a session waits for a scan.
    pub terminal_qr: bool,
    /// Where the `png` backend writes frames; empty = `data_dir/display.png`
    /// (use [`Config::png_path`]).
    pub png_path: PathBuf,
    /// Frame size `WxH`; unset: the panel's size after `rotation` (spi), else 240x240.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<DisplaySize>,
    /// The panel: controller and size as mounted.
    pub model: PanelModel,
    /// Clockwise rotation from the model's orientation: 0, 90, 180 or 270.
    pub rotation: u16,
    /// The spidev device (its chip select is part of the name: `spidev0.1` is CE1).
    pub spi_device: PathBuf,
    /// SPI clock in Hz.
    pub spi_speed_hz: u32,
    /// The GPIO chip, by label (`gpioinfo` shows it): `pinctrl-bcm2835` on Pi Zero 2 W to
    /// Pi 4 (`pinctrl-bcm2711` on some Pi 4 kernels), `pinctrl-rp1` on Pi 5.
    pub gpio_chip: String,
    /// Data/command line (BCM numbering).
    pub dc_pin: u32,
    /// Reset line, or `"none"` (then a software reset).
    pub rst_pin: GpioLine,
    /// Backlight line (driven high), or `"none"`.
    pub backlight_pin: GpioLine,
    /// A push button to ground (with the pull-up set in config.txt), or `"none"`.
    pub button_pin: GpioLine,
    /// Invert colours; unset: the model's default (on for ST7789, off for ILI9341).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invert: Option<bool>,
    /// BGR subpixel order; unset: the model's default (RGB for ST7789, BGR for ILI9341).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bgr: Option<bool>,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            backend: DisplayBackend::Png,
            terminal_qr: true,
            png_path: PathBuf::new(),
            size: None,
            model: PanelModel::St7789_240x240,
            rotation: 0,
            spi_device: PathBuf::from("/dev/spidev0.0"),
            spi_speed_hz: 40_000_000,
            gpio_chip: "pinctrl-bcm2835".to_owned(),
            dc_pin: 25,
            rst_pin: GpioLine(Some(27)),
            backlight_pin: GpioLine(Some(24)),
            button_pin: GpioLine(None),
            invert: None,
            bgr: None,
        }
    }
}

impl DisplayConfig {
    /// The frame size: `size`, else the panel's after `rotation` (spi), else 240x240.
    pub fn frame_size(&self) -> (u32, u32) {
        match (self.size, self.backend) {
            (Some(s), _) => (s.0, s.1),
            (None, DisplayBackend::Spi) => self.model.size_at(self.rotation),
            (None, _) => (240, 240),
        }
    }

    pub fn invert(&self) -> bool {
        self.invert.unwrap_or(self.model.default_invert())
    }

    pub fn bgr(&self) -> bool {
        self.bgr.unwrap_or(self.model.default_bgr())
    }
}

/// Which display backend draws the screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisplayBackend {
    /// Frames written as PNG (dev, tests, `/api/display.png`).
    Png,
    /// An SPI panel (needs the `spi` build feature).
    Spi,
    /// No display.
    None,
}

/// The SPI panels wagate drives (controller and size as mounted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PanelModel {
    /// ST7789, 240x240 (Waveshare 1.3" LCD HAT).
    #[serde(rename = "st7789-240x240")]
    St7789_240x240,
    /// ST7789, 320x240 landscape (Pimoroni Display HAT Mini).
    #[serde(rename = "st7789-320x240")]
    St7789_320x240,
    /// ILI9341, 320x240 landscape (the common 2.4"/2.8" modules).
    #[serde(rename = "ili9341-320x240")]
    Ili9341_320x240,
}

impl PanelModel {
    /// Width and height at rotation 0.
    pub fn size(self) -> (u32, u32) {
        match self {
            PanelModel::St7789_240x240 => (240, 240),
            PanelModel::St7789_320x240 | PanelModel::Ili9341_320x240 => (320, 240),
        }
    }

    /// Width and height at `rotation` degrees.
    pub fn size_at(self, rotation: u16) -> (u32, u32) {
        let (w, h) = self.size();
        if rotation % 180 == 90 { (h, w) } else { (w, h) }
    }

    pub fn default_invert(self) -> bool {
        matches!(
            self,
            PanelModel::St7789_240x240 | PanelModel::St7789_320x240
        )
    }

    pub fn default_bgr(self) -> bool {
        matches!(self, PanelModel::Ili9341_320x240)
    }
}

/// A frame size `WxH`; written as that string in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplaySize(pub u32, pub u32);

impl fmt::Display for DisplaySize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.0, self.1)
    }
}

impl FromStr for DisplaySize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid size {s:?}: expected \"WIDTHxHEIGHT\", e.g. \"240x240\"");
        let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
        let num = |p: &str| {
            if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse::<u32>().ok()
            } else {
                None
            }
        };
        match (num(w), num(h)) {
            (Some(w), Some(h)) => Ok(DisplaySize(w, h)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DisplaySize {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DisplaySize> for String {
    fn from(v: DisplaySize) -> String {
        v.to_string()
    }
}

/// A GPIO line offset on `display.gpio_chip`, or none: an integer or `"none"` in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "LineRepr", into = "LineRepr")]
pub struct GpioLine(pub Option<u32>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LineRepr {
    Number(i64),
    Word(String),
}

impl TryFrom<LineRepr> for GpioLine {
    type Error = String;

    fn try_from(v: LineRepr) -> Result<Self, Self::Error> {
        // A number in a string too: an env override of a key whose default is "none" arrives
        // as text (WAGATE_DISPLAY__BUTTON_PIN=21).
        let v = match v {
            LineRepr::Word(w) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                w.parse().map(LineRepr::Number).unwrap_or(LineRepr::Word(w))
            }
            v => v,
        };
        match v {
            LineRepr::Number(n) => u32::try_from(n)
                .ok()
                .filter(|n| *n < MAX_GPIO_LINE)
                .map(|n| GpioLine(Some(n)))
                .ok_or_else(|| format!("GPIO line {n} is out of range 0..{MAX_GPIO_LINE}")),
            LineRepr::Word(w) if w.eq_ignore_ascii_case("none") => Ok(GpioLine(None)),
            LineRepr::Word(w) => Err(format!(
                "invalid GPIO line {w:?}: expected a line number or \"none\""
            )),
        }
    }
}

impl From<GpioLine> for LineRepr {
    fn from(v: GpioLine) -> LineRepr {
        match v.0 {
            Some(n) => LineRepr::Number(i64::from(n)),
            None => LineRepr::Word("none".to_owned()),
        }
    }
}

/// GPIO line offsets are below this (a Pi's chips have 54 or 58 lines).
const MAX_GPIO_LINE: u32 = 512;

/// `[log]`: tracing output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Log filter directives (`tracing_subscriber`'s `Targets` syntax): a default level and
    /// `target=level` pairs, e.g. `info,wagate=debug,whatsapp_rust=off`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
///
/// Only `text` exists: the build enables tracing-subscriber without its `json` feature (it
/// pulls `serde_json` formatting and `tracing-serde` into a binary sized for small boards).
/// Adding `json` is a variant here plus the feature in Cargo.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    Text,
}

/// `[discovery]`: mDNS/DNS-SD announcement on the LAN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// Announce `_wagate._tcp.local` (and `_https._tcp.local` with TLS).
    pub enabled: bool,
    /// The DNS-SD instance name; empty = the host name.
    pub instance_name: String,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            instance_name: String::new(),
        }
    }
}

/// `[sessions]`: what `wagate run` does with sessions at boot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Start every enabled session at boot.
    pub autostart: bool,
    /// Created by `wagate run` if no session exists; `^[a-z0-9_-]{1,32}$`.
    pub default_session: String,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            autostart: true,
            default_session: "default".to_owned(),
        }
    }
}

/// `[webhooks]`: the forwarder's clock gate, retry tail, rotation grace and log retention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Hold deliveries until the kernel says the system clock is synchronized (boards without
    /// a real-time clock boot in the past, and receivers refuse old signature timestamps).
    pub require_clock_sync: bool,
    /// Seconds one delivery attempt may take (connect, send, answer).
    pub timeout_secs: u32,
    /// The retry waits after the fixed 1 s, 5 s and 30 s, in seconds; after the last one a
    /// delivery is `failed`.
    pub retry_tail_secs: Vec<u32>,
    /// After `rotate-secret`, how long deliveries also carry the old secret's signature.
    pub rotation_grace_secs: u32,
    /// Finished deliveries (and events no delivery needs) older than this are removed.
    pub retention_days: u32,
    /// At most this many deliveries are kept; the oldest finished ones go first.
    pub retention_max_deliveries: u32,
    /// At most this many events are kept (the oldest go first, unless a pending delivery
    /// needs them); `replay` reaches back no further.
    pub retention_max_events: u32,
    /// At most this many MiB of events and deliveries together (their stored JSON) are kept;
    /// the oldest finished go first, as with the counts. Inline media make events large.
    pub retention_max_mb: u32,
    /// Inbound media up to this many bytes is embedded in `message.received` as base64
    /// (`inline`); 0 turns it off. At most 4 MiB.
    pub inline_media_max_bytes: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            require_clock_sync: false,
            timeout_secs: 10,
            retry_tail_secs: vec![300, 1800, 7200, 21600, 43200],
            rotation_grace_secs: 86400,
            retention_days: 7,
            retention_max_deliveries: 100_000,
            retention_max_events: 100_000,
            retention_max_mb: 256,
            inline_media_max_bytes: 0,
        }
    }
}

/// A secret configuration value: never written by [`Config::to_toml_string`], never shown by
/// `Debug` (so never logged).
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Secret {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One `[[mqtt.notify]]` recipient: a Home Assistant `notify` entity that sends a text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyTarget {
    /// The entity's name in Home Assistant ("Alice").
    pub name: String,
    /// The recipient: a phone number (`+4915...`) or a JID.
    pub to: String,
    /// The session it belongs to; every session when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
}

/// `[mqtt]`: events out to a broker, send commands in, Home Assistant discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`; empty = MQTT off.
    pub url: String,
    pub username: String,
    /// The password (`WAGATE_MQTT__PASSWORD`); never written back or logged.
    #[serde(skip_serializing)]
    pub password: Secret,
    /// A file whose first line is the password (instead of `password`).
    pub password_file: PathBuf,
    /// `mqtts://`: trust this CA (PEM) instead of the system's roots.
    pub ca_file: PathBuf,
    /// `mqtts://`: accept exactly the broker certificate with this SHA-256 (hex, colons
    /// allowed) instead of checking a chain.
    pub cert_sha256: String,
    /// Empty = `wagate-<device id>`.
    pub client_id: String,
    /// Empty = `wagate/<device id>`.
    pub base_topic: String,
    pub discovery_prefix: String,
    /// Publish Home Assistant discovery.
    pub discovery: bool,
    /// Take send commands on `<base>/<session>/send/<kind>` (the broker's ACL guards them).
    pub commands: bool,
    /// Event types published (the same filter as a webhook endpoint's).
    pub events: Vec<String>,
    /// Seconds between keep-alive pings.
    pub keep_alive_secs: u32,
    /// Home Assistant `notify` entities: one per recipient.
    pub notify: Vec<NotifyTarget>,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            username: String::new(),
            password: Secret::default(),
            password_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            cert_sha256: String::new(),
            client_id: String::new(),
            base_topic: String::new(),
            discovery_prefix: "homeassistant".to_owned(),
            discovery: true,
            commands: true,
            events: vec!["*".to_owned()],
            keep_alive_secs: 30,
            notify: Vec::new(),
        }
    }
}

impl MqttConfig {
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !self.enabled() {
            return Ok(());
        }
        if let Err(crate::net::mqtt::MqttError::Url(why)) = crate::net::mqtt::parse_url(&self.url) {
            return Err(("mqtt.url", why));
        }
        if !self.password.is_empty() && !self.password_file.as_os_str().is_empty() {
            return Err((
                "mqtt.password_file",
                "give the password or a password file, not both".to_owned(),
            ));
        }
        let hex: String = self.cert_sha256.chars().filter(|c| *c != ':').collect();
        if !hex.is_empty() && (hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit())) {
            return Err((
                "mqtt.cert_sha256",
                "64 hex digits (colons allowed between bytes)".to_owned(),
            ));
        }
        for (key, topic) in [
            ("mqtt.base_topic", &self.base_topic),
            ("mqtt.discovery_prefix", &self.discovery_prefix),
        ] {
            if topic.starts_with('/')
                || topic.ends_with('/')
                || topic.contains(['+', '#', '\0'])
                || topic.len() > 200
            {
                return Err((
                    key,
                    format!(
                        "{topic:?}: a topic without wildcards and without a leading or trailing /"
                    ),
                ));
            }
        }
        if self.discovery_prefix.is_empty() {
            return Err(("mqtt.discovery_prefix", "must not be empty".to_owned()));
        }
        if let Err(e) = crate::store::outbox::check_event_filter(&self.events) {
            return Err(("mqtt.events", e));
        }
        if !(5..=3600).contains(&self.keep_alive_secs) {
            return Err((
                "mqtt.keep_alive_secs",
                format!("{} is out of range 5..=3600", self.keep_alive_secs),
            ));
        }
        let mut slugs: Vec<(String, Option<&str>)> = Vec::new();
        for n in &self.notify {
            let slug = crate::net::mqtt::slug(&n.name);
            if slug.is_empty() || slug.chars().all(|c| c == '_') {
                return Err((
                    "mqtt.notify",
                    format!("{:?}: a name needs a letter or digit", n.name),
                ));
            }
            if let Err(e) = crate::engine::compose::parse_recipient(&n.to) {
                return Err(("mqtt.notify", format!("{:?}: {e}", n.name)));
            }
            if let Some(s) = &n.session
                && !is_valid_session_id(s)
            {
                return Err(("mqtt.notify", format!("session {s:?} is not a session id")));
            }
            // Two recipients of one session may not share an entity (and topic).
            let session = n.session.as_deref();
            if slugs
                .iter()
                .any(|(o, os)| *o == slug && (os.is_none() || session.is_none() || *os == session))
            {
                return Err((
                    "mqtt.notify",
                    format!("{:?}: another recipient has the same name ({slug})", n.name),
                ));
            }
            slugs.push((slug, session));
        }
        Ok(())
    }

    /// The password: `password`, else the first line of `password_file`.
    pub fn read_password(&self) -> std::io::Result<Option<String>> {
        if !self.password.is_empty() {
            return Ok(Some(self.password.0.clone()));
        }
        if self.password_file.as_os_str().is_empty() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&self.password_file)?;
        Ok(Some(text.lines().next().unwrap_or_default().to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Where a configuration value came from; named in every error about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Env(String),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Default => f.write_str("built-in defaults"),
        }
    }
}

/// Why the configuration was refused. Every variant about a key names the dotted key path and
/// its [`Origin`]; the daemon prints the error and exits, so the message is the whole story.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown key {key} (from {origin}){hint}")]
    UnknownKey {
        key: String,
        origin: Origin,
        /// `"; expected one of ..."` when known, else empty.
        hint: String,
    },
    #[error("{key}: {message} (from {origin})")]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
    #[error(
        "unknown environment variable {var}: not a config key (use WAGATE_<SECTION>__<KEY>, \
         one of the short names WAGATE_DATA_DIR, WAGATE_API_ADDR, WAGATE_WHATSAPP_URL, \
         WAGATE_LOG, or WAGATE_CONFIG)"
    )]
    UnknownEnv { var: String },
    #[error("environment variable {var} is not valid UTF-8")]
    EnvNotUnicode { var: String },
    #[error("environment variables {first} and {second} both set {key} to different values")]
    EnvConflict {
        key: String,
        first: String,
        second: String,
    },
    #[error("cannot print the configuration as TOML: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl ConfigError {
    /// The dotted key path the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::EnvConflict { key, .. } => Some(key),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

/// Load the configuration: `path` (from `--config`), else `$WAGATE_CONFIG`, else
/// [`DEFAULT_CONFIG_PATH`] if it exists, else defaults; then the process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        match (k.into_string(), v.into_string()) {
            (Ok(k), Ok(v)) => env.push((k, v)),
            (Ok(k), Err(_)) if is_wagate_var(&k) => {
                return Err(ConfigError::EnvNotUnicode { var: k });
            }
            // Not ours (or a name that cannot be ours): ignore.
            _ => {}
        }
    }
    load_from(path, env)
}

/// [`load`] with the environment given explicitly (tests; `load` passes the process env).
pub fn load_from(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_with_default_path(path, env, Path::new(DEFAULT_CONFIG_PATH))
}

/// [`load_from`] with the fallback file path injectable, so tests never touch `/etc`.
fn load_with_default_path(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    default_path: &Path,
) -> Result<Config, ConfigError> {
    let env = EnvOverrides::collect(env)?;

    let file = match path
        .map(Path::to_path_buf)
        .or_else(|| env.config_path.clone())
    {
        Some(p) => {
            let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })?;
            Some((p, text))
        }
        None => match std::fs::read_to_string(default_path) {
            Ok(text) => Some((default_path.to_path_buf(), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ConfigError::Read {
                    path: default_path.to_path_buf(),
                    source,
                });
            }
        },
    };

    let (file_path, file_table) = match file {
        Some((p, text)) => {
            let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
                path: p.clone(),
                message: e.to_string().trim_end().to_owned(),
            })?;
            (Some(p), table)
        }
        None => (None, toml::Table::new()),
    };

    let sources = Sources {
        file_path,
        file_table,
        env: env.overrides,
    };
    let merged = sources.merged()?;

    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(merged)).map_err(|e| {
            let segments = key_segments(e.path());
            let key = e.path().to_string();
            let origin = sources.origin_of(&segments);
            let message = e.into_inner().message().trim_end().to_owned();
            if let Some(rest) = message.strip_prefix("unknown field `") {
                // serde: "unknown field `x`, expected one of `a`, `b`" (or "there are no fields")
                let hint = rest
                    .split_once(", ")
                    .map(|(_, h)| format!("; {h}"))
                    .unwrap_or_default();
                ConfigError::UnknownKey { key, origin, hint }
            } else {
                ConfigError::Invalid {
                    key,
                    origin,
                    message,
                }
            }
        })?;

    config.validate().map_err(|(key, message)| {
        let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        ConfigError::Invalid {
            origin: sources.origin_of(&segments),
            key: key.to_owned(),
            message,
        }
    })?;
    Ok(config)
}

fn is_wagate_var(name: &str) -> bool {
    name.get(..ENV_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ENV_PREFIX))
}

fn key_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .map_while(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            _ => None,
        })
        .collect()
}

/// One `WAGATE_*` variable that sets a key.
#[derive(Debug)]
struct EnvOverride {
    var: String,
    path: Vec<String>,
    raw: String,
}

#[derive(Debug, Default)]
struct EnvOverrides {
    config_path: Option<PathBuf>,
    overrides: Vec<EnvOverride>,
}

impl EnvOverrides {
    fn collect(env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut vars: Vec<(String, String)> =
            env.into_iter().filter(|(k, _)| is_wagate_var(k)).collect();
        // Deterministic conflict reports whatever order the environment came in.
        vars.sort();

        let mut out = EnvOverrides::default();
        let mut seen: BTreeMap<Vec<String>, usize> = BTreeMap::new();
        for (var, raw) in vars {
            let upper = var.to_ascii_uppercase();
            if upper == CONFIG_PATH_ENV {
                // Empty means unset, as shells and unit files often leave it.
                if !raw.is_empty() {
                    out.config_path = Some(PathBuf::from(raw));
                }
                continue;
            }
            let path: Vec<String> = if let Some((_, section, key)) =
                SHORT_ENV_NAMES.iter().find(|(n, ..)| *n == upper)
            {
                vec![(*section).to_owned(), (*key).to_owned()]
            } else if upper[ENV_PREFIX.len()..].contains("__") {
                let segs: Vec<String> = upper[ENV_PREFIX.len()..]
                    .split("__")
                    .map(str::to_ascii_lowercase)
                    .collect();
                if segs.iter().any(String::is_empty) {
                    return Err(ConfigError::UnknownEnv { var });
                }
                segs
            } else {
                return Err(ConfigError::UnknownEnv { var });
            };
            match seen.get(&path) {
                Some(&i) if out.overrides[i].raw == raw => {}
                Some(&i) => {
                    return Err(ConfigError::EnvConflict {
                        key: path.join("."),
                        first: out.overrides[i].var.clone(),
                        second: var,
                    });
                }
                None => {
                    seen.insert(path.clone(), out.overrides.len());
                    out.overrides.push(EnvOverride { var, path, raw });
                }
            }
        }
        Ok(out)
    }
}

/// The file table and the env overrides, kept apart so errors can name their origin.
struct Sources {
    file_path: Option<PathBuf>,
    file_table: toml::Table,
    env: Vec<EnvOverride>,
}

impl Sources {
    /// The file table with every env override merged in.
    fn merged(&self) -> Result<toml::Table, ConfigError> {
        let defaults = toml::Table::try_from(Config::default())?;
        let mut table = self.file_table.clone();
        for o in &self.env {
            // Secrets are not in the written defaults, and are text whatever they look like.
            let text = toml::Value::String(String::new());
            let hint = if SECRET_KEYS.contains(&o.path.join(".").as_str()) {
                Some(&text)
            } else {
                lookup(&defaults, &o.path)
            };
            let value = env_value(&o.raw, hint);
            let (leaf, parents) = o
                .path
                .split_last()
                .ok_or_else(|| ConfigError::UnknownEnv { var: o.var.clone() })?;
            let mut t = &mut table;
            for (depth, seg) in parents.iter().enumerate() {
                let entry = t
                    .entry(seg.clone())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                t = match entry {
                    toml::Value::Table(inner) => inner,
                    other => {
                        let prefix = &o.path[..=depth];
                        return Err(ConfigError::Invalid {
                            key: prefix.join("."),
                            origin: self.origin_of(prefix),
                            message: format!(
                                "expected a table, found {} (while applying {})",
                                other.type_str(),
                                o.var
                            ),
                        });
                    }
                };
            }
            t.insert(leaf.clone(), value);
        }
        Ok(table)
    }

    /// Who set the key at `path` (or the container the error is about).
    fn origin_of(&self, path: &[String]) -> Origin {
        // An env var that set this key or one of its parents wins, as it did in the merge.
        if let Some(o) = self.env.iter().find(|o| path.starts_with(&o.path)) {
            return Origin::Env(o.var.clone());
        }
        if let Some(p) = &self.file_path
            && lookup(&self.file_table, path).is_some()
        {
            return Origin::File(p.clone());
        }
        // A table the environment created (e.g. an unknown section from WAGATE_X__Y).
        if let Some(o) = self.env.iter().find(|o| o.path.starts_with(path)) {
            return Origin::Env(o.var.clone());
        }
        match &self.file_path {
            Some(p) => Origin::File(p.clone()),
            None => Origin::Default,
        }
    }
}

fn lookup<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut v = table.get(first)?;
    for seg in rest {
        v = v.as_table()?.get(seg)?;
    }
    Some(v)
}

/// An env value as TOML: raw text for string keys (so `WAGATE_WHATSAPP__PUSH_NAME=123` is
/// the name "123"); otherwise a TOML scalar or array when it parses as one, else a string.
fn env_value(raw: &str, default: Option<&toml::Value>) -> toml::Value {
    if matches!(default, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_owned());
    }
    parse_toml_value(raw).unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn parse_toml_value(raw: &str) -> Option<toml::Value> {
    let mut doc: toml::Table = toml::from_str(&format!("v = {raw}")).ok()?;
    if doc.len() != 1 {
        return None; // "1\nother = 2" smuggles a second key
    }
    match doc.remove("v")? {
        toml::Value::Table(_) | toml::Value::Datetime(_) => None,
        v => Some(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Validation and helpers
// ---------------------------------------------------------------------------------------------

impl Config {
    /// Range and cross-field rules serde cannot express. Returns the first broken rule as
    /// (dotted key, message).
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if !cfg!(feature = "trust-wa-mock") && !self.whatsapp.trust_ca_file.as_os_str().is_empty() {
            return Err((
                "whatsapp.trust_ca_file",
                "only a build with the trust-wa-mock feature (tests and the demo) accepts this"
                    .to_owned(),
            ));
        }
        let s = &self.store;
        if !(1..=1024).contains(&s.cache_size_mb) {
            return Err((
                "store.cache_size_mb",
                format!("{} is out of range 1..=1024", s.cache_size_mb),
            ));
        }
        if !(1..=65536).contains(&s.media_cache_mb) {
            return Err((
                "store.media_cache_mb",
                format!("{} is out of range 1..=65536", s.media_cache_mb),
            ));
        }
        if s.message_retention_days == 0 {
            return Err((
                "store.message_retention_days",
                "must be at least 1".to_owned(),
            ));
        }
        if s.message_retention_max < 100 {
            return Err((
                "store.message_retention_max",
                "must be at least 100".to_owned(),
            ));
        }
        if s.wa_message_records_max < 100 {
            return Err((
                "store.wa_message_records_max",
                "must be at least 100".to_owned(),
            ));
        }
        if !(1..=1440).contains(&s.retention_interval_minutes) {
            return Err((
                "store.retention_interval_minutes",
                format!("{} is out of range 1..=1440", s.retention_interval_minutes),
            ));
        }
        if s.data_dir.as_os_str().is_empty() {
            return Err(("store.data_dir", "must not be empty".to_owned()));
        }
        let sock = self.socket_path();
        if sock.as_os_str().len() > MAX_SOCKET_PATH_BYTES {
            return Err((
                "store.data_dir",
                format!(
                    "too long: the control socket {} exceeds {MAX_SOCKET_PATH_BYTES} bytes",
                    sock.display()
                ),
            ));
        }

        let a = &self.api;
        if a.body_limit_kb == 0 {
            return Err(("api.body_limit_kb", "must be at least 1".to_owned()));
        }
        if !(1..=600).contains(&a.header_timeout_secs) {
            return Err(("api.header_timeout_secs", "must be 1..=600".to_owned()));
        }
        if a.tls == TlsMode::Files {
            if a.tls_cert.as_os_str().is_empty() {
                return Err((
                    "api.tls_cert",
                    "required when api.tls = \"files\"".to_owned(),
                ));
            }
            if a.tls_key.as_os_str().is_empty() {
                return Err((
                    "api.tls_key",
                    "required when api.tls = \"files\"".to_owned(),
                ));
            }
        }

        for name in &a.host_names {
            if !is_dns_name(name) {
                return Err((
                    "api.host_names",
                    format!(
                        "{name:?} is not a DNS name (letters, digits and hyphens in dot-separated \
                         labels of 1..=63, at most 253 in all)"
                    ),
                ));
            }
        }
        let inst = &self.discovery.instance_name;
        if inst.len() > 63 || inst.chars().any(char::is_control) {
            return Err((
                "discovery.instance_name",
                "at most 63 bytes, no control characters".to_owned(),
            ));
        }

        let w = &self.whatsapp;
        let lower = w.url.to_ascii_lowercase();
        let host = lower
            .strip_prefix("wss://")
            .or_else(|| lower.strip_prefix("ws://"));
        match host {
            None => {
                return Err((
                    "whatsapp.url",
                    format!("{:?} must start with ws:// or wss://", w.url),
                ));
            }
            Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                return Err(("whatsapp.url", format!("{:?} has no host", w.url)));
            }
            Some(_) => {}
        }

        self.validate_display()?;

        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::Targets>()
        {
            return Err(("log.level", e.to_string()));
        }

        let name = &self.sessions.default_session;
        if !is_valid_session_id(name) {
            return Err((
                "sessions.default_session",
                format!("{name:?} must match ^[a-z0-9_-]{{1,32}}$"),
            ));
        }
        if let Err(e) = self.pacing.validate() {
            return Err((pacing_key(e.field), e.message));
        }

        let h = &self.webhooks;
        if !(1..=120).contains(&h.timeout_secs) {
            return Err((
                "webhooks.timeout_secs",
                format!("{} is out of range 1..=120", h.timeout_secs),
            ));
        }
        if h.retry_tail_secs.len() > 16 || h.retry_tail_secs.contains(&0) {
            return Err((
                "webhooks.retry_tail_secs",
                "at most 16 waits, each at least 1 second".to_owned(),
            ));
        }
        if h.inline_media_max_bytes > MAX_INLINE_MEDIA_BYTES {
            return Err((
                "webhooks.inline_media_max_bytes",
                format!(
                    "{} is over the limit of {MAX_INLINE_MEDIA_BYTES}",
                    h.inline_media_max_bytes
                ),
            ));
        }
        if h.retention_days == 0 {
            return Err(("webhooks.retention_days", "must be at least 1".to_owned()));
        }
        if h.retention_max_deliveries < 100 {
            return Err((
                "webhooks.retention_max_deliveries",
                "must be at least 100".to_owned(),
            ));
        }
        if h.retention_max_events < 100 {
            return Err((
                "webhooks.retention_max_events",
                "must be at least 100".to_owned(),
            ));
        }
        if h.retention_max_mb == 0 {
            return Err(("webhooks.retention_max_mb", "must be at least 1".to_owned()));
        }
        self.mqtt.validate()
    }

    fn validate_display(&self) -> Result<(), (&'static str, String)> {
        let d = &self.display;
        if !matches!(d.rotation, 0 | 90 | 180 | 270) {
            return Err((
                "display.rotation",
                format!("{} is not one of 0, 90, 180, 270", d.rotation),
            ));
        }
        if let Some(size) = d.size {
            if !(240..=480).contains(&size.0) || !(240..=480).contains(&size.1) {
                return Err((
                    "display.size",
                    format!("{size}: width and height must be in 240..=480"),
                ));
            }
            let panel = d.model.size_at(d.rotation);
            if d.backend == DisplayBackend::Spi && (size.0, size.1) != panel {
                return Err((
                    "display.size",
                    format!(
                        "{size} does not match the panel: {} at rotation {} is {}x{}",
                        serde_variant(&d.model),
                        d.rotation,
                        panel.0,
                        panel.1
                    ),
                ));
            }
        }
        if d.backend != DisplayBackend::Spi {
            return Ok(());
        }
        if !(100_000..=100_000_000).contains(&d.spi_speed_hz) {
            return Err((
                "display.spi_speed_hz",
                format!("{} is out of range 100000..=100000000", d.spi_speed_hz),
            ));
        }
        if d.spi_device.as_os_str().is_empty() {
            return Err(("display.spi_device", "must not be empty".to_owned()));
        }
        if d.gpio_chip.is_empty() {
            return Err(("display.gpio_chip", "must not be empty".to_owned()));
        }
        if d.dc_pin >= MAX_GPIO_LINE {
            return Err((
                "display.dc_pin",
                format!("GPIO line {} is out of range 0..{MAX_GPIO_LINE}", d.dc_pin),
            ));
        }
        let pins = [
            ("display.dc_pin", Some(d.dc_pin)),
            ("display.rst_pin", d.rst_pin.0),
            ("display.backlight_pin", d.backlight_pin.0),
            ("display.button_pin", d.button_pin.0),
        ];
        for (i, (key, pin)) in pins.iter().enumerate() {
            let Some(pin) = pin else { continue };
            if let Some((other, _)) = pins[..i].iter().find(|(_, p)| *p == Some(*pin)) {
                return Err((key, format!("GPIO line {pin} is already {other}")));
            }
        }
        Ok(())
    }

    /// The redb file: `data_dir/wagate.redb`.
    pub fn db_path(&self) -> PathBuf {
        self.store.data_dir.join("wagate.redb")
    }

    /// The control socket: `data_dir/wagate.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.store.data_dir.join("wagate.sock")
    }

    /// Where the png display backend writes: `display.png_path`, or `data_dir/display.png`.
    pub fn png_path(&self) -> PathBuf {
        if self.display.png_path.as_os_str().is_empty() {
            self.store.data_dir.join("display.png")
        } else {
            self.display.png_path.clone()
        }
    }

    /// The redb page cache in bytes (for `Store::open`).
    pub fn cache_bytes(&self) -> usize {
        usize::try_from(self.store.cache_size_mb)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024 * 1024)
    }

    /// The API body limit in bytes.
    pub fn body_limit_bytes(&self) -> usize {
        usize::try_from(self.api.body_limit_kb)
            .unwrap_or(usize::MAX)
            .saturating_mul(1024)
    }

    /// The effective configuration as TOML (`wagate config check`). Loading the output gives
    /// back an equal `Config`.
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        Ok(toml::to_string_pretty(self)?)
    }
}

/// A host name: dot-separated labels of letters, digits and inner hyphens (a trailing dot
/// allowed), at most 253 bytes.
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `^[a-z0-9_-]{1,32}$`, the session id rule.
/// The dotted config key of a pacing setting.
fn pacing_key(field: &str) -> &'static str {
    match field {
        "min_delay_ms" => "pacing.min_delay_ms",
        "max_delay_ms" => "pacing.max_delay_ms",
        "typing" => "pacing.typing",
        "typing_cps" => "pacing.typing_cps",
        "typing_max_ms" => "pacing.typing_max_ms",
        "per_minute" => "pacing.per_minute",
        "per_hour" => "pacing.per_hour",
        "per_day" => "pacing.per_day",
        "warmup" => "pacing.warmup",
        "duplicate_recipients" => "pacing.duplicate_recipients",
        "duplicate_window_s" => "pacing.duplicate_window_s",
        "duplicate_action" => "pacing.duplicate_action",
        "auto_read" => "pacing.auto_read",
        "presence" => "pacing.presence",
        "pulse_every_s" => "pacing.pulse_every_s",
        "pulse_for_s" => "pacing.pulse_for_s",
        "active_receipts" => "pacing.active_receipts",
        "check_per_minute" => "pacing.check_per_minute",
        "check_per_hour" => "pacing.check_per_hour",
        "check_per_day" => "pacing.check_per_day",
        "check_cache_s" => "pacing.check_cache_s",
        "reject_calls" => "pacing.reject_calls",
        "call_reply" => "pacing.call_reply",
        _ => "pacing",
    }
}

fn is_valid_session_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The name serde gives a unit variant (`"st7789-240x240"`), for messages.
fn serde_variant<T: Serialize>(v: &T) -> String {
    toml::Value::try_from(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A temp dir with `wagate.toml` holding `body`.
    fn file(body: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wagate.toml");
        std::fs::write(&path, body).unwrap();
        (dir, path)
    }

    /// Load with no `/etc` fallback (a path that does not exist).
    fn load_test(path: Option<&Path>, e: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        load_with_default_path(path, env(e), &dir.path().join("absent.toml"))
    }

    fn err(path: Option<&Path>, e: &[(&str, &str)]) -> ConfigError {
        match load_test(path, e) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn config_defaults_with_no_file() {
        let c = load_test(None, &[("PATH", "/bin"), ("HOME", "/root")]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.store.data_dir, PathBuf::from("./data"));
        assert_eq!(c.store.cache_size_mb, 4);
        assert_eq!(c.api.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(c.api.tls, TlsMode::Off);
        assert_eq!(c.api.body_limit_kb, 16384);
        assert_eq!(c.whatsapp.url, "wss://web.whatsapp.com/ws/chat");
        assert_eq!(c.whatsapp.version.tuple(), (2, 3000, 1029496320));
        assert_eq!(c.whatsapp.push_name, "wagate");
        assert_eq!(c.display.backend, DisplayBackend::Png);
        assert!(c.display.terminal_qr);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.log.format, LogFormat::Text);
        assert!(c.sessions.autostart);
        assert_eq!(c.sessions.default_session, "default");
        assert!(c.api.host_names.is_empty());
        assert!(c.discovery.enabled);
        assert_eq!(c.db_path(), Path::new("./data/wagate.redb"));
        assert_eq!(c.socket_path(), Path::new("./data/wagate.sock"));
        assert_eq!(c.png_path(), Path::new("./data/display.png"));
        assert_eq!(c.cache_bytes(), 4 * 1024 * 1024);
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn config_file_values() {
        let (_d, p) = file(
            r#"
[store]
data_dir = "/var/lib/wagate"
cache_size_mb = 16
[api]
addr = "127.0.0.1:9000"
tls = "self-signed"
body_limit_kb = 1024
host_names = ["gate.example.lan", "wagate.home."]
[discovery]
enabled = false
instance_name = "Kitchen gateway"
[whatsapp]
url = "ws://127.0.0.1:7000/ws"
version = "2.1.3"
push_name = "shop"
[display]
backend = "spi"
terminal_qr = false
png_path = "/tmp/screen.png"
[log]
level = "warn,wagate=debug"
format = "text"
[sessions]
autostart = false
default_session = "main-1"
"#,
        );
        let c = load_test(Some(&p), &[]).unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("/var/lib/wagate"));
        assert_eq!(c.store.cache_size_mb, 16);
        assert_eq!(c.api.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.api.tls, TlsMode::SelfSigned);
        assert_eq!(c.api.body_limit_kb, 1024);
        assert_eq!(c.api.host_names, ["gate.example.lan", "wagate.home."]);
        assert!(!c.discovery.enabled);
        assert_eq!(c.discovery.instance_name, "Kitchen gateway");
        assert_eq!(c.whatsapp.url, "ws://127.0.0.1:7000/ws");
        assert_eq!(c.whatsapp.version, WaVersion(2, 1, 3));
        assert_eq!(c.whatsapp.push_name, "shop");
        assert_eq!(c.display.backend, DisplayBackend::Spi);
        assert!(!c.display.terminal_qr);
        assert_eq!(c.png_path(), Path::new("/tmp/screen.png"));
        assert_eq!(c.log.level, "warn,wagate=debug");
        assert!(!c.sessions.autostart);
        assert_eq!(c.sessions.default_session, "main-1");
        assert_eq!(c.db_path(), Path::new("/var/lib/wagate/wagate.redb"));
    }

    #[test]
    fn config_partial_file_keeps_other_defaults() {
        let (_d, p) = file("[api]\naddr = \"127.0.0.1:1\"\n");
        let c = load_test(Some(&p), &[]).unwrap();
        assert_eq!(c.api.addr, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.api.body_limit_kb, 16384);
        assert_eq!(c.store, StoreConfig::default());
    }

    #[test]
    fn config_env_overrides_beat_file() {
        let (_d, p) = file("[store]\ncache_size_mb = 16\n[api]\ntls = \"self-signed\"\n");
        let c = load_test(
            Some(&p),
            &[
                ("WAGATE_STORE__CACHE_SIZE_MB", "8"),
                ("WAGATE_API__TLS", "off"),
                ("wagate_display__terminal_qr", "false"),
                ("WAGATE_WHATSAPP__VERSION", "2.3000.5"),
                ("WAGATE_WHATSAPP__PUSH_NAME", "123"),
                ("WAGATE_SESSIONS__AUTOSTART", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.cache_size_mb, 8);
        assert_eq!(c.api.tls, TlsMode::Off);
        assert!(!c.display.terminal_qr);
        assert_eq!(c.whatsapp.version, WaVersion(2, 3000, 5));
        assert_eq!(c.whatsapp.push_name, "123"); // string key: raw text, not an integer
        assert!(!c.sessions.autostart);
    }

    #[test]
    fn config_short_env_names() {
        let (_d, p) = file("[log]\nlevel = \"warn\"\n");
        let c = load_test(
            Some(&p),
            &[
                ("WAGATE_DATA_DIR", "/srv/wagate"),
                ("WAGATE_API_ADDR", "[::1]:8443"),
                ("WAGATE_WHATSAPP_URL", "ws://localhost:9/ws"),
                ("WAGATE_LOG", "debug"),
            ],
        )
        .unwrap();
        assert_eq!(c.store.data_dir, PathBuf::from("/srv/wagate"));
        assert_eq!(c.api.addr, "[::1]:8443".parse().unwrap());
        assert_eq!(c.whatsapp.url, "ws://localhost:9/ws");
        assert_eq!(c.log.level, "debug");
    }

    #[test]
    fn config_short_and_long_env_conflict_is_refused() {
        let e = err(
            None,
            &[("WAGATE_LOG", "debug"), ("WAGATE_LOG__LEVEL", "info")],
        );
        assert!(matches!(e, ConfigError::EnvConflict { .. }), "{e}");
        assert_eq!(e.key(), Some("log.level"));
        // The same value twice is fine.
        let c = load_test(
            None,
            &[("WAGATE_LOG", "debug"), ("WAGATE_LOG__LEVEL", "debug")],
        )
        .unwrap();
        assert_eq!(c.log.level, "debug");
    }

    #[test]
    fn config_unknown_key_in_file_is_refused() {
        let (_d, p) = file("[store]\ncach_size_mb = 8\n");
        let e = err(Some(&p), &[]);
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::UnknownKey { .. }), "{msg}");
        assert!(msg.starts_with("unknown key store.cach_size_mb"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
        assert!(
            msg.contains("cache_size_mb"),
            "hint lists known keys: {msg}"
        );

        let (_d, p) = file("[stor]\ndata_dir = \"x\"\n");
        let msg = err(Some(&p), &[]).to_string();
        assert!(msg.starts_with("unknown key stor "), "{msg}");
    }

    #[test]
    fn config_unknown_env_key_is_refused() {
        let e = err(None, &[("WAGATE_STORE__CACH_SIZE_MB", "8")]);
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::UnknownKey { .. }), "{msg}");
        assert!(msg.contains("store.cach_size_mb"), "{msg}");
        assert!(msg.contains("WAGATE_STORE__CACH_SIZE_MB"), "{msg}");

        let msg = err(None, &[("WAGATE_WEBHOOKS__URL", "x")]).to_string();
        assert!(msg.contains("unknown key webhooks"), "{msg}");
        assert!(msg.contains("WAGATE_WEBHOOKS__URL"), "{msg}");

        // Single-underscore typos are not silently ignored.
        let e = err(None, &[("WAGATE_API_TLS", "off")]);
        assert!(matches!(&e, ConfigError::UnknownEnv { var } if var == "WAGATE_API_TLS"));
        let e = err(None, &[("WAGATE_API____TLS", "off")]);
        assert!(matches!(e, ConfigError::UnknownEnv { .. }), "{e}");
    }

    #[test]
    fn config_message_retention_defaults_file_and_env() {
        let c = load_test(None, &[]).unwrap();
        assert_eq!(
            (
                c.store.message_retention_days,
                c.store.message_retention_max
            ),
            (30, 100_000)
        );
        let (_d, p) = file("[store]\nmessage_retention_days = 7\nmessage_retention_max = 500\n");
        let c = load_test(Some(&p), &[("WAGATE_STORE__MESSAGE_RETENTION_MAX", "200")]).unwrap();
        assert_eq!(
            (
                c.store.message_retention_days,
                c.store.message_retention_max
            ),
            (7, 200)
        );
        let msg = err(Some(&p), &[("WAGATE_STORE__MESSAGE_RETENTION_DAYS", "0")]).to_string();
        assert!(msg.contains("store.message_retention_days"), "{msg}");
        assert_eq!(c.store.retention_interval_minutes, 60);
        let c = load_test(None, &[("WAGATE_STORE__RETENTION_INTERVAL_MINUTES", "5")]).unwrap();
        assert_eq!(c.store.retention_interval_minutes, 5);
        for bad in ["0", "1441"] {
            let msg = err(None, &[("WAGATE_STORE__RETENTION_INTERVAL_MINUTES", bad)]).to_string();
            assert!(msg.contains("store.retention_interval_minutes"), "{msg}");
        }
        assert_eq!(c.webhooks.retention_max_events, 100_000);
        let c = load_test(None, &[("WAGATE_WEBHOOKS__RETENTION_MAX_EVENTS", "500")]).unwrap();
        assert_eq!(c.webhooks.retention_max_events, 500);
        assert_eq!(c.webhooks.retention_max_mb, 256);
        let c = load_test(None, &[("WAGATE_WEBHOOKS__RETENTION_MAX_MB", "64")]).unwrap();
        assert_eq!(c.webhooks.retention_max_mb, 64);
    }

    #[test]
    fn config_bad_values_are_refused_naming_the_key() {
        let cases: &[(&str, &str, &str)] = &[
            ("WAGATE_API__ADDR", "nonsense", "api.addr"),
            ("WAGATE_STORE__CACHE_SIZE_MB", "0", "store.cache_size_mb"),
            ("WAGATE_STORE__CACHE_SIZE_MB", "2048", "store.cache_size_mb"),
            ("WAGATE_STORE__CACHE_SIZE_MB", "-1", "store.cache_size_mb"),
            ("WAGATE_STORE__CACHE_SIZE_MB", "lots", "store.cache_size_mb"),
            (
                "WAGATE_STORE__MESSAGE_RETENTION_DAYS",
                "0",
                "store.message_retention_days",
            ),
            (
                "WAGATE_STORE__MESSAGE_RETENTION_MAX",
                "99",
                "store.message_retention_max",
            ),
            (
                "WAGATE_STORE__WA_MESSAGE_RECORDS_MAX",
                "99",
                "store.wa_message_records_max",
            ),
            (
                "WAGATE_WEBHOOKS__RETENTION_MAX_EVENTS",
                "99",
                "webhooks.retention_max_events",
            ),
            (
                "WAGATE_WEBHOOKS__RETENTION_MAX_MB",
                "0",
                "webhooks.retention_max_mb",
            ),
            (
                "WAGATE_WHATSAPP__URL",
                "http://example.com/ws",
                "whatsapp.url",
            ),
            ("WAGATE_WHATSAPP__URL", "wss://", "whatsapp.url"),
            ("WAGATE_WHATSAPP__VERSION", "x", "whatsapp.version"),
            ("WAGATE_WHATSAPP__VERSION", "1.2", "whatsapp.version"),
            ("WAGATE_WHATSAPP__VERSION", "1.2.3.4", "whatsapp.version"),
            ("WAGATE_WHATSAPP__VERSION", "1.+2.3", "whatsapp.version"),
            ("WAGATE_API__TLS", "on", "api.tls"),
            ("WAGATE_API__BODY_LIMIT_KB", "0", "api.body_limit_kb"),
            (
                "WAGATE_API__HEADER_TIMEOUT_SECS",
                "0",
                "api.header_timeout_secs",
            ),
            (
                "WAGATE_API__HOST_NAMES",
                r#"["gate.example.lan", "evil.com/x"]"#,
                "api.host_names",
            ),
            ("WAGATE_API__HOST_NAMES", r#"["-gate"]"#, "api.host_names"),
            (
                "WAGATE_DISCOVERY__ENABLED",
                "sometimes",
                "discovery.enabled",
            ),
            ("WAGATE_DISPLAY__BACKEND", "hdmi", "display.backend"),
            ("WAGATE_DISPLAY__TERMINAL_QR", "yes", "display.terminal_qr"),
            ("WAGATE_LOG__FORMAT", "json", "log.format"),
            ("WAGATE_LOG", "info,wagate=loud", "log.level"),
            (
                "WAGATE_SESSIONS__DEFAULT_SESSION",
                "Main",
                "sessions.default_session",
            ),
            (
                "WAGATE_SESSIONS__DEFAULT_SESSION",
                "",
                "sessions.default_session",
            ),
            ("WAGATE_PACING__MIN_DELAY_MS", "9000", "pacing.min_delay_ms"),
            ("WAGATE_PACING__PER_HOUR", "0", "pacing.per_hour"),
            ("WAGATE_PACING__WARMUP", "[10, 0]", "pacing.warmup"),
            (
                "WAGATE_PACING__DUPLICATE_ACTION",
                "drop",
                "pacing.duplicate_action",
            ),
        ];
        for (var, value, key) in cases {
            let e = err(None, &[(var, value)]);
            let msg = e.to_string();
            assert_eq!(e.key(), Some(*key), "{var}={value}: {msg}");
            assert!(msg.starts_with(&format!("{key}: ")), "{msg}");
            assert!(msg.contains(var), "{var}={value}: {msg}");
        }
        let e = err(None, &[("WAGATE_API__ADDR", "nonsense")]);
        assert_eq!(
            e.to_string(),
            "api.addr: invalid socket address syntax (from environment variable WAGATE_API__ADDR)"
        );
    }

    #[test]
    fn config_bad_value_in_file_names_the_file() {
        let (_d, p) = file("[whatsapp]\nurl = \"http://example.com\"\n");
        let msg = err(Some(&p), &[]).to_string();
        assert!(msg.starts_with("whatsapp.url: "), "{msg}");
        assert!(
            msg.contains(&format!("(from file {})", p.display())),
            "{msg}"
        );

        let (_d, p) = file("[store]\ncache_size_mb = \"4\"\n");
        let msg = err(Some(&p), &[]).to_string();
        assert!(
            msg.starts_with("store.cache_size_mb: invalid type"),
            "{msg}"
        );

        let (_d, p) = file("store = 4\n");
        let msg = err(Some(&p), &[("WAGATE_STORE__CACHE_SIZE_MB", "8")]).to_string();
        assert!(msg.starts_with("store: expected a table"), "{msg}");
        assert!(msg.contains(&p.display().to_string()), "{msg}");
    }

    #[test]
    fn config_tls_files_requires_cert_and_key() {
        let e = err(None, &[("WAGATE_API__TLS", "files")]);
        assert_eq!(e.key(), Some("api.tls_cert"), "{e}");
        let e = err(
            None,
            &[
                ("WAGATE_API__TLS", "files"),
                ("WAGATE_API__TLS_CERT", "/c.pem"),
            ],
        );
        assert_eq!(e.key(), Some("api.tls_key"), "{e}");
        let c = load_test(
            None,
            &[
                ("WAGATE_API__TLS", "files"),
                ("WAGATE_API__TLS_CERT", "/c.pem"),
                ("WAGATE_API__TLS_KEY", "/k.pem"),
            ],
        )
        .unwrap();
        assert_eq!(c.api.tls, TlsMode::Files);
    }

    #[test]
    fn config_data_dir_too_long_for_socket() {
        let long = format!("/{}", "d".repeat(120));
        let e = err(None, &[("WAGATE_DATA_DIR", &long)]);
        assert_eq!(e.key(), Some("store.data_dir"), "{e}");
        assert!(e.to_string().contains("WAGATE_DATA_DIR"), "{e}");
    }

    #[test]
    fn config_syntax_error_names_the_file() {
        let (_d, p) = file("[store\n");
        let e = err(Some(&p), &[]);
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains(&p.display().to_string()));
    }

    #[test]
    fn mqtt_is_off_until_a_url_and_its_password_is_never_written() {
        assert!(!Config::default().mqtt.enabled());
        let c = load_test(
            None,
            &[
                ("WAGATE_MQTT__URL", "mqtts://broker.lan:8883"),
                ("WAGATE_MQTT__USERNAME", "wagate"),
                ("WAGATE_MQTT__PASSWORD", "123456"),
                (
                    "WAGATE_MQTT__NOTIFY",
                    r#"[{name = "Alice", to = "+491700000001"}]"#,
                ),
            ],
        )
        .unwrap();
        assert!(c.mqtt.enabled());
        // Digits in the environment stay the password's text.
        assert_eq!(c.mqtt.read_password().unwrap().as_deref(), Some("123456"));
        assert_eq!(c.mqtt.notify[0].name, "Alice");
        let text = c.to_toml_string().unwrap();
        assert!(!text.contains("123456"), "{text}");
        assert!(!format!("{c:?}").contains("123456"));
        for (var, value, key) in [
            ("WAGATE_MQTT__URL", "http://broker", "mqtt.url"),
            ("WAGATE_MQTT__URL", "mqtt://", "mqtt.url"),
            ("WAGATE_MQTT__URL", "mqtt://user:pw@host", "mqtt.url"),
            (
                "WAGATE_MQTT__NOTIFY",
                r#"[{name = "A", to = "+491700000001"}, {name = "a", to = "+491700000002"}]"#,
                "mqtt.notify",
            ),
            (
                "WAGATE_MQTT__NOTIFY",
                r#"[{name = "Bob", to = "not a number"}]"#,
                "mqtt.notify",
            ),
            ("WAGATE_MQTT__CERT_SHA256", "abcd", "mqtt.cert_sha256"),
            ("WAGATE_MQTT__BASE_TOPIC", "wagate/#", "mqtt.base_topic"),
            ("WAGATE_MQTT__EVENTS", r#"["message.nope"]"#, "mqtt.events"),
        ] {
            let mut vars = vec![(var, value)];
            if var != "WAGATE_MQTT__URL" {
                vars.push(("WAGATE_MQTT__URL", "mqtt://127.0.0.1"));
            }
            let e = err(None, &vars).to_string();
            assert!(e.contains(key), "{var}={value}: {e}");
        }
    }

    #[test]
    fn config_round_trip_to_toml_string() {
        let defaults = Config::default().to_toml_string().unwrap();
        let (_d, p) = file(&defaults);
        assert_eq!(load_test(Some(&p), &[]).unwrap(), Config::default());

        let mut c = Config::default();
        c.store.data_dir = PathBuf::from("/var/lib/wagate");
        c.store.cache_size_mb = 32;
        c.api.addr = "[fe80::1]:443".parse().unwrap();
        c.api.tls = TlsMode::Files;
        c.api.tls_cert = PathBuf::from("/etc/wagate/cert.pem");
        c.api.tls_key = PathBuf::from("/etc/wagate/key.pem");
        c.whatsapp.version = WaVersion(3, 0, 7);
        c.whatsapp.push_name = "Shop \"Front\"".to_owned();
        c.display.backend = DisplayBackend::None;
        c.display.png_path = PathBuf::from("/run/wagate/d.png");
        c.log.level = "wagate=trace,info".to_owned();
        c.sessions.default_session = "s_1".to_owned();
        let text = c.to_toml_string().unwrap();
        assert!(
            text.contains("[store]") && text.contains("tls = \"files\""),
            "{text}"
        );
        assert!(text.contains("version = \"3.0.7\""), "{text}");
        let (_d, p) = file(&text);
        assert_eq!(load_test(Some(&p), &[]).unwrap(), c);
    }

    #[test]
    fn config_default_path_used_only_when_present() {
        let dir = tempfile::tempdir().unwrap();
        let fallback = dir.path().join("wagate.toml");

        // Absent: defaults.
        let c = load_with_default_path(None, env(&[]), &fallback).unwrap();
        assert_eq!(c, Config::default());

        // Present: read.
        std::fs::write(&fallback, "[store]\ncache_size_mb = 64\n").unwrap();
        let c = load_with_default_path(None, env(&[]), &fallback).unwrap();
        assert_eq!(c.store.cache_size_mb, 64);

        // --config wins over the fallback; WAGATE_CONFIG too.
        let (_d, explicit) = file("[store]\ncache_size_mb = 2\n");
        let c = load_with_default_path(Some(&explicit), env(&[]), &fallback).unwrap();
        assert_eq!(c.store.cache_size_mb, 2);
        let via_env = explicit.to_str().unwrap();
        let c =
            load_with_default_path(None, env(&[("WAGATE_CONFIG", via_env)]), &fallback).unwrap();
        assert_eq!(c.store.cache_size_mb, 2);

        // --config wins over WAGATE_CONFIG.
        let c = load_with_default_path(
            Some(&fallback),
            env(&[("WAGATE_CONFIG", via_env)]),
            &fallback,
        )
        .unwrap();
        assert_eq!(c.store.cache_size_mb, 64);

        // Empty WAGATE_CONFIG is unset.
        let c = load_with_default_path(None, env(&[("WAGATE_CONFIG", "")]), &fallback).unwrap();
        assert_eq!(c.store.cache_size_mb, 64);
    }

    #[test]
    fn config_explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = err(Some(&missing), &[]);
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        let e = err(None, &[("WAGATE_CONFIG", missing.to_str().unwrap())]);
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }

    #[test]
    fn config_env_value_parsing() {
        assert_eq!(env_value("8", None), toml::Value::Integer(8));
        assert_eq!(env_value("true", None), toml::Value::Boolean(true));
        assert_eq!(env_value("1.5", None), toml::Value::Float(1.5));
        assert_eq!(
            env_value(r#"["a","b"]"#, None),
            toml::Value::Array(vec!["a".into(), "b".into()])
        );
        assert_eq!(env_value("off", None), toml::Value::String("off".into()));
        assert_eq!(env_value("2024-01-01", None), "2024-01-01".into());
        assert_eq!(env_value("1\nx = 2", None), "1\nx = 2".into());
        let s = toml::Value::String(String::new());
        assert_eq!(env_value("8", Some(&s)), "8".into());
        assert_eq!(env_value("\"q\"", Some(&s)), "\"q\"".into());
    }

    #[test]
    fn config_other_env_is_ignored() {
        let c = load_test(None, &[("RUST_LOG", "trace"), ("WAGATEWAY", "x")]).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn config_version_parse() {
        assert_eq!(
            "2.3000.1029496320".parse(),
            Ok(WaVersion(2, 3000, 1029496320))
        );
        assert!("2.3000".parse::<WaVersion>().is_err());
        assert!("2..3".parse::<WaVersion>().is_err());
        assert!("2.3.99999999999".parse::<WaVersion>().is_err());
        assert_eq!(WaVersion(1, 2, 3).to_string(), "1.2.3");
    }

    #[test]
    fn config_display_keys() {
        let (_d, p) = file(
            "[display]\nbackend = \"spi\"\nmodel = \"st7789-320x240\"\nrotation = 90\n\
             spi_device = \"/dev/spidev0.1\"\ndc_pin = 9\nrst_pin = \"none\"\n\
             backlight_pin = 13\nbutton_pin = 5\ninvert = false\n",
        );
        let c = load_test(Some(&p), &[]).unwrap();
        let d = &c.display;
        assert_eq!(d.model, PanelModel::St7789_320x240);
        assert_eq!(d.rst_pin, GpioLine(None));
        assert_eq!(d.button_pin, GpioLine(Some(5)));
        assert_eq!(d.frame_size(), (240, 320));
        assert!(!d.invert());
        assert!(!d.bgr());
        // Round trip, "none" included.
        let text = c.to_toml_string().unwrap();
        assert!(text.contains("rst_pin = \"none\""), "{text}");
        let (_d2, p2) = file(&text);
        assert_eq!(load_test(Some(&p2), &[]).unwrap(), c);

        // Defaults: png at 240x240; environment overrides.
        let c = load_test(None, &[("WAGATE_DISPLAY__SIZE", "320x240")]).unwrap();
        assert_eq!(c.display.frame_size(), (320, 240));
        let c = load_test(None, &[("WAGATE_DISPLAY__BACKLIGHT_PIN", "none")]).unwrap();
        assert_eq!(c.display.backlight_pin, GpioLine(None));
        assert_eq!(Config::default().display.frame_size(), (240, 240));
    }

    #[test]
    fn config_display_refusals() {
        let e = err(None, &[("WAGATE_DISPLAY__ROTATION", "45")]);
        assert_eq!(e.key(), Some("display.rotation"), "{e}");
        let e = err(None, &[("WAGATE_DISPLAY__SIZE", "240by240")]);
        assert_eq!(e.key(), Some("display.size"), "{e}");
        let e = err(None, &[("WAGATE_DISPLAY__SIZE", "128x128")]);
        assert_eq!(e.key(), Some("display.size"), "{e}");
        let e = err(None, &[("WAGATE_DISPLAY__RST_PIN", "off")]);
        assert_eq!(e.key(), Some("display.rst_pin"), "{e}");
        assert!(e.to_string().contains("\"none\""), "{e}");
        let spi = ("WAGATE_DISPLAY__BACKEND", "spi");
        let e = err(None, &[spi, ("WAGATE_DISPLAY__BUTTON_PIN", "25")]);
        assert_eq!(e.key(), Some("display.button_pin"), "{e}");
        assert!(e.to_string().contains("display.dc_pin"), "{e}");
        let e = err(None, &[spi, ("WAGATE_DISPLAY__SIZE", "320x240")]);
        assert_eq!(e.key(), Some("display.size"), "{e}");
        assert!(e.to_string().contains("st7789-240x240"), "{e}");
        let e = err(None, &[spi, ("WAGATE_DISPLAY__SPI_SPEED_HZ", "0")]);
        assert_eq!(e.key(), Some("display.spi_speed_hz"), "{e}");
        let e = err(None, &[spi, ("WAGATE_DISPLAY__MODEL", "st7735")]);
        assert_eq!(e.key(), Some("display.model"), "{e}");
        // The SPI keys are not checked for other backends.
        load_test(None, &[("WAGATE_DISPLAY__SPI_SPEED_HZ", "0")]).unwrap();
    }

    #[test]
    fn config_session_id_rule() {
        assert!(is_valid_session_id("default"));
        assert!(is_valid_session_id(&"a".repeat(32)));
        assert!(!is_valid_session_id(&"a".repeat(33)));
        assert!(!is_valid_session_id("a b"));
        assert!(!is_valid_session_id("é"));
    }
}
