//! The pairing QR as an image: PNG (1-bit grayscale) and SVG, both with the 4-module quiet
//! zone the standard asks for. Same symbol as [`super::terminal::qr_text`] (error correction
//! level L: the WhatsApp payload is long, and a screen shows it without damage).

use qrcode::{Color, EcLevel, QrCode};

pub use super::terminal::QrError;

/// Quiet zone on every side, in modules.
pub const QUIET_ZONE: usize = 4;

/// A QR symbol as a square grid of dark (true) and light modules, quiet zone included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Modules {
    /// Modules per side, quiet zone included.
    pub size: usize,
    /// Row-major, `size * size` entries.
    pub dark: Vec<bool>,
}

impl Modules {
    pub fn of(code: &str) -> Result<Modules, QrError> {
        let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::L)
            .map_err(|e| QrError::new(e.to_string()))?;
        let w = qr.width();
        let size = w + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        for (i, c) in qr.to_colors().into_iter().enumerate() {
            let (x, y) = (i % w + QUIET_ZONE, i / w + QUIET_ZONE);
            dark[y * size + x] = c == Color::Dark;
        }
        Ok(Modules { size, dark })
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        self.dark[y * self.size + x]
    }
}

/// PNG, black on white, `scale` pixels per module (at least 1).
pub fn qr_png(code: &str, scale: u32) -> Result<Vec<u8>, QrError> {
    let m = Modules::of(code)?;
    let scale = scale.max(1) as usize;
    let px = m.size * scale;
    let row_bytes = px.div_ceil(8);
    let mut pixels = vec![0u8; row_bytes * px];
    for y in 0..px {
        let row = &mut pixels[y * row_bytes..(y + 1) * row_bytes];
        for x in 0..px {
            // 1 = white in 1-bit grayscale.
            if !m.is_dark(x / scale, y / scale) {
                row[x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let side = u32::try_from(px).map_err(|_| QrError::new("image too large".into()))?;
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side, side);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::One);
        let mut w = enc
            .write_header()
            .map_err(|e| QrError::new(e.to_string()))?;
        w.write_image_data(&pixels)
            .map_err(|e| QrError::new(e.to_string()))?;
        w.finish().map_err(|e| QrError::new(e.to_string()))?;
    }
    Ok(out)
}

/// SVG in module units (`viewBox` = the symbol with its quiet zone), drawn `px_per_module`
/// pixels per module by default; one path of unit squares for the dark modules.
pub fn qr_svg(code: &str, px_per_module: u32) -> Result<String, QrError> {
    let m = Modules::of(code)?;
    let n = m.size;
    let px = n * px_per_module.max(1) as usize;
    let mut path = String::with_capacity(n * n * 4);
    for y in 0..n {
        for x in 0..n {
            if m.is_dark(x, y) {
                path.push_str(&format!("M{x} {y}h1v1h-1z"));
            }
        }
    }
    Ok(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{px}\" height=\"{px}\" \
         viewBox=\"0 0 {n} {n}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{n}\" height=\"{n}\" fill=\"#fff\"/>\
         <path fill=\"#000\" d=\"{path}\"/></svg>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_has_the_symbol_size() {
        let png = qr_png("hello", 3).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let m = Modules::of("hello").unwrap();
        assert_eq!(m.size, 21 + 8);
        // IHDR width at bytes 16..20.
        let w = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
        assert_eq!(w as usize, m.size * 3);
    }
}
