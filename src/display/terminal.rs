//! The pairing QR as text: Unicode half blocks (two modules per character cell), dark
//! modules drawn as spaces on a light background so it scans on dark and light terminals
//! alike, with the quiet zone the standard asks for.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
#[error("cannot encode this code as a QR symbol: {0}")]
pub struct QrError(String);

impl QrError {
    pub(crate) fn new(message: String) -> Self {
        QrError(message)
    }
}

/// Render `code` as terminal text, one QR module per column and two per row.
pub fn qr_text(code: &str) -> Result<String, QrError> {
    let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::L)
        .map_err(|e| QrError(e.to_string()))?;
    Ok(qr
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_pairing_payload() {
        let code = "2@abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+/abcdefghij,\
                    c2VydmVyIG5vaXNlIGtleSBmb3IgdGVzdGluZyBvbmx5IQ==,\
                    aWRlbnRpdHkga2V5IGZvciB0ZXN0aW5nIG9ubHkhISE=,\
                    YWR2IHNlY3JldCBmb3IgdGVzdGluZyBvbmx5ISEhISE=,1";
        let text = qr_text(code).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Square symbol: width in modules == 2 * rows (rounded up), quiet zone included.
        let width = lines[0].chars().count();
        assert!(width >= 21 + 8);
        assert_eq!(lines.len(), width.div_ceil(2));
        assert!(lines.iter().all(|l| l.chars().count() == width));
    }
}
