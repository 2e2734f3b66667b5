//! wa-mock: a mock WhatsApp server that speaks the real protocol, so the real
//! `whatsapp-rust` client can pair, log in and exchange end-to-end encrypted
//! messages against it in tests. Dev-only; never part of wagate's build.
//!
//! # Layout
//! - [`server`]: `MockServer`, the handle tests hold (start, QR scan, pair code,
//!   faults, stanza record, waiting helpers), and `MockConfig`.
//! - [`noise`]: server side of the Noise XX / IK / XXfallback handshake and the
//!   encrypted frame transport.
//! - `conn`: one WebSocket connection: handshake, reader loop, writer task.
//! - `router`: what the server answers to each stanza; message, receipt and
//!   chatstate routing; offline queues.
//! - [`phone`]: the mock phone (account identity, ADV signing, QR / pair-code
//!   linking crypto).
//! - [`state`]: accounts, devices, keys, connections, faults, stanza record.
//! - `groups`: the `w:g2` IQs (create, query, participants, subject,
//!   description, settings, invite links, leave), the `w:gp2` notifications
//!   to members, and group message / receipt fan-out.
//! - [`media`]: the HTTPS media host for uploads and downloads (and profile pictures).
//! - [`profile`]: about texts, profile pictures and the business flag (usync
//!   `status`/`picture`/`business`, `w:profile:picture`, `status`, `<presence name>`).
//! - `calls`: call offers and ends sent to a callee's devices.
//! - `admin`: the admin HTTP API (`/admin/...`).
//! - [`error`]: the error type.
//!
//! # Client-side requirements
//! The mock's certificate chain is a test chain: the client must be built with
//! `whatsapp-rust`'s `danger-skip-cert-chain-verify` feature (only ever in a
//! test build). Pin the client version (`Bot::builder().with_version(..)`) so
//! it does not fetch one from the web.

mod admin;
mod calls;
mod conn;
pub mod error;
mod groups;
pub mod media;
pub mod noise;
pub mod phone;
pub mod profile;
mod router;
pub mod server;
mod stanza;
pub mod state;

pub use error::{Error, Result};
pub use server::{
    AccountInfo, AccountSummary, DeviceSummary, Freeze, MockConfig, MockServer, StanzaFilter,
    StreamError,
};
pub use state::{
    AddRequest, DeviceAddr, Direction, Group, GroupDescription, GroupMember, JoinRequest,
    LoginFailure, MessageFault, StanzaRecord,
};
