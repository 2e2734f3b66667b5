//! Pixels: everything that draws the device's state for a person to read.
//!
//! - [`terminal`]: the pairing QR as Unicode half blocks, for a terminal or `?format=text`.
//! - [`qr`]: the pairing QR as PNG and SVG, for `GET /api/sessions/{sid}/qr`.

pub mod qr;
pub mod terminal;
