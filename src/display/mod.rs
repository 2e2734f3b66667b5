//! Pixels: everything that draws the device's state for a person to read.
//!
//! - [`terminal`]: the pairing QR as Unicode half blocks, for a terminal or `?format=text`.

pub mod terminal;
