//! The QR renderers behind `GET /api/sessions/{sid}/qr`, read back by a QR decoder: the PNG
//! and the SVG carry exactly the pairing payload, at the size they claim.

use wagate::display::qr::{Modules, QUIET_ZONE, qr_png, qr_svg};
use wagate::display::terminal::qr_text;

/// A pairing payload shaped like WhatsApp's (ref, noise key, identity key, adv secret).
const CODE: &str = "2@Q0hBUExFU1RPUFJFRkVSRU5DRVRIQVRJU0xPTkdFTk9VR0gxMjM0NTY3ODkw,\
                    c2VydmVyIG5vaXNlIGtleSBmb3IgdGVzdGluZyBvbmx5IQ==,\
                    aWRlbnRpdHkga2V5IGZvciB0ZXN0aW5nIG9ubHkhISE=,\
                    YWR2IHNlY3JldCBmb3IgdGVzdGluZyBvbmx5ISEhISE=,1";

fn decode(width: usize, height: usize, dark: impl Fn(usize, usize) -> bool) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if dark(x, y) { 0 } else { 255 }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR symbol expected");
    let (_, content) = grids[0].decode().expect("the symbol decodes");
    content
}

#[test]
fn png_decodes_back_to_the_code() {
    let png_bytes = qr_png(CODE, 4).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info().clone();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    assert_eq!(info.bit_depth, png::BitDepth::One);
    let m = Modules::of(CODE).unwrap();
    assert_eq!(info.width as usize, m.size * 4);
    assert_eq!(info.height, info.width);
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut buf).unwrap();
    let (w, h, stride) = (frame.width as usize, frame.height as usize, frame.line_size);
    // The quiet zone is white.
    for x in 0..w {
        assert_ne!(buf[x / 8] & (0x80 >> (x % 8)), 0, "top row must be light");
    }
    let content = decode(w, h, |x, y| {
        buf[y * stride + x / 8] & (0x80 >> (x % 8)) == 0
    });
    assert_eq!(content, CODE);
}

#[test]
fn svg_has_the_right_size_and_decodes_back() {
    let svg = qr_svg(CODE, 8).unwrap();
    let m = Modules::of(CODE).unwrap();
    let n = m.size;
    assert!(svg.contains(&format!("viewBox=\"0 0 {n} {n}\"")), "{svg}");
    assert!(svg.contains(&format!("width=\"{}\"", n * 8)));
    assert!(svg.contains(&format!("height=\"{}\"", n * 8)));
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));

    // Rasterize the path (unit squares "M{x} {y}h1v1h-1z") and decode it.
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut grid = vec![false; n * n];
    for sq in d.split('M').filter(|s| !s.is_empty()) {
        let xy = sq.strip_suffix("h1v1h-1z").unwrap();
        let (x, y) = xy.split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        assert!(x >= QUIET_ZONE && y >= QUIET_ZONE && x < n - QUIET_ZONE && y < n - QUIET_ZONE);
        grid[y * n + x] = true;
    }
    assert_eq!(grid, m.dark);
    let scale = 4;
    let content = decode(n * scale, n * scale, |x, y| {
        grid[(y / scale) * n + x / scale]
    });
    assert_eq!(content, CODE);
}

#[test]
fn text_has_one_column_per_module() {
    let m = Modules::of(CODE).unwrap();
    let text = qr_text(CODE).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0].chars().count(), m.size);
    assert_eq!(lines.len(), m.size.div_ceil(2));
    // Dark modules are spaces, light ones blocks: the quiet-zone row is all blocks.
    assert!(lines[0].chars().all(|c| c == '█'));
}
