//! wagate: a WhatsApp gateway appliance.
//!
//! # Layout
//!
//! - [`auth`]: API keys (format, scopes, hashes) and the first-boot setup code; what the
//!   API checks and the CLI creates.
//! - [`clock`]: whether the kernel says the clock is synchronized.
//! - [`device`]: the device's stable id, host name, addresses, and the names a request may
//!   call it by (the DNS-rebinding guard).
//! - [`config`]: the TOML file, `WAGATE_*` environment overrides and dev defaults; bad keys
//!   and values are refused at start with the key named.
//! - [`events`]: the domain events every room speaks, and the broadcast bus that carries them
//!   live (lossy by design: nothing durable travels only on the bus).
//! - [`store`]: the only room that touches redb: one file, a whatsapp-rust `Backend` per
//!   session namespace, the session registry, API keys (hashes only), the send queue and
//!   what pacing remembers (send log, content seen, per-session settings).
//! - [`engine`]: the only room that imports whatsapp-rust: the session manager, one task
//!   per session that owns its client, QR lifecycle and failure states, and one send worker
//!   per session paced by the anti-ban policy (`engine::pacing`, pure on an injected clock).
//! - [`display`]: pixels for people: the setup, pairing QR, status and failure screens,
//!   drawn by one pure renderer into a framebuffer a panel shows (SPI, PNG file, none), and the
//!   pairing QR in the terminal.
//! - [`net`]: the only room that speaks HTTP: the LAN API (axum), one file per resource, and
//!   media fetched by URL for sends, HTTPS with a self-signed or given certificate, and the
//!   mDNS/DNS-SD announcement.
//! - [`control`]: the unix socket through which CLI verbs reach a running daemon (redb
//!   locks its file to one process).

pub mod auth;
pub mod clock;
pub mod config;
pub mod control;
pub mod device;
pub mod display;
pub mod engine;
pub mod events;
pub mod net;
pub mod store;
