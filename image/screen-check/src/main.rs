//! screen-check FRAME.png [--find FONT:TEXT]... [--fingerprint HEX:PAIRS] [--qr]
//!
//! Reads a frame of wagate's screen and looks for each text, rendered in the named font
//! exactly as embedded-graphics draws it (one colour, no background), anywhere in the frame.
//! Fonts: `profont24` (the setup code), `10x20` (the device name), `6x13` (small text),
//! `7x13` (the header's note: the device name), `9x15b` (the header's title). `--fingerprint` looks for a certificate fingerprint as the setup
//! screen breaks it (lines of whole hex pairs in 6x13). Prints one line per text, `found at
//! X,Y` or `NOT FOUND`; exits 1 when one is missing. `--qr` prints the QR code's text
//! (`qr: ...`), as a phone's camera reads it; exits 1 when there is none.

use std::process::ExitCode;

use embedded_graphics::mono_font::iso_8859_1::{FONT_6X13, FONT_7X13, FONT_9X15_BOLD, FONT_10X20};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::text::{Baseline, Text};

struct Frame {
    w: usize,
    h: usize,
    rgb: Vec<[u8; 3]>,
}

fn read_png(path: &str) -> Result<Frame, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut dec = png::Decoder::new(std::io::BufReader::new(file));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| format!("{path}: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| format!("{path}: {e}"))?;
    let ch = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => return Err(format!("{path}: colour type {other:?}")),
    };
    let (w, h) = (info.width as usize, info.height as usize);
    let rgb = buf[..w * h * ch]
        .chunks(ch)
        .map(|p| if ch >= 3 { [p[0], p[1], p[2]] } else { [p[0], p[0], p[0]] })
        .collect();
    Ok(Frame { w, h, rgb })
}

/// The pixels a text covers, drawn at the origin with its top at y = 0.
struct Mask {
    w: usize,
    h: usize,
    on: Vec<bool>,
}

struct MaskTarget(Mask);

impl OriginDimensions for MaskTarget {
    fn size(&self) -> Size {
        Size::new(self.0.w as u32, self.0.h as u32)
    }
}

impl DrawTarget for MaskTarget {
    type Color = BinaryColor;
    type Error = core::convert::Infallible;
    fn draw_iter<I: IntoIterator<Item = Pixel<BinaryColor>>>(&mut self, it: I) -> Result<(), Self::Error> {
        for Pixel(p, c) in it {
            if p.x >= 0 && p.y >= 0 && (p.x as usize) < self.0.w && (p.y as usize) < self.0.h {
                self.0.on[p.y as usize * self.0.w + p.x as usize] = c.is_on();
            }
        }
        Ok(())
    }
}

fn font(name: &str) -> Option<&'static MonoFont<'static>> {
    Some(match name {
        "profont24" => &profont::PROFONT_24_POINT,
        "10x20" => &FONT_10X20,
        "6x13" => &FONT_6X13,
        "7x13" => &FONT_7X13,
        "9x15b" => &FONT_9X15_BOLD,
        _ => return None,
    })
}

fn mask(text: &str, font: &MonoFont<'static>) -> Mask {
    let n = text.chars().count();
    let w = n * (font.character_size.width + font.character_spacing) as usize;
    let h = font.character_size.height as usize;
    let mut t = MaskTarget(Mask { w, h, on: vec![false; w * h] });
    let style = MonoTextStyle::new(font, BinaryColor::On);
    let _ = Text::with_baseline(text, Point::zero(), style, Baseline::Top).draw(&mut t);
    t.0
}

/// Where the text is drawn: every covered pixel in one colour, none of the others in its
/// cells (the glyph cells, spacing included) in that colour.
fn find(frame: &Frame, m: &Mask) -> Option<(usize, usize)> {
    let first = m.on.iter().position(|&b| b)?;
    let (fx, fy) = (first % m.w, first / m.w);
    if m.w > frame.w || m.h > frame.h {
        return None;
    }
    for y in 0..=frame.h - m.h {
        'x: for x in 0..=frame.w - m.w {
            let c = frame.rgb[(y + fy) * frame.w + x + fx];
            for my in 0..m.h {
                for mx in 0..m.w {
                    let px = frame.rgb[(y + my) * frame.w + x + mx];
                    if (px == c) != m.on[my * m.w + mx] {
                        continue 'x;
                    }
                }
            }
            return Some((x, y));
        }
    }
    None
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        eprintln!("usage: screen-check FRAME.png [--find FONT:TEXT]... [--fingerprint FP]");
        return ExitCode::from(2);
    };
    let frame = match read_png(path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("screen-check: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ok = true;
    let mut i = 1;
    while i < args.len() {
        let (flag, val) = (args[i].as_str(), args.get(i + 1).cloned().unwrap_or_default());
        i += 2;
        match flag {
            "--find" => {
                let Some((f, text)) = val.split_once(':') else {
                    eprintln!("--find FONT:TEXT");
                    return ExitCode::from(2);
                };
                let Some(font) = font(f) else {
                    eprintln!("unknown font {f} (profont24, 10x20, 6x13, 7x13, 9x15b)");
                    return ExitCode::from(2);
                };
                match find(&frame, &mask(text, font)) {
                    Some((x, y)) => println!("screen shows {text:?} ({f}) at {x},{y}"),
                    None => {
                        println!("screen does NOT show {text:?} ({f})");
                        ok = false;
                    }
                }
            }
            "--qr" => {
                i -= 1; // takes no value
                let mut img = rqrr::PreparedImage::prepare_from_greyscale(frame.w, frame.h, |x, y| {
                    let [r, g, b] = frame.rgb[y * frame.w + x];
                    ((u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000) as u8
                });
                match img.detect_grids().into_iter().find_map(|g| g.decode().ok().map(|(_, s)| s)) {
                    Some(s) => println!("qr: {s}"),
                    None => {
                        println!("screen shows NO readable QR code");
                        ok = false;
                    }
                }
            }
            "--fingerprint" => {
                // The setup screen cuts it into lines of whole "xx:" groups; the line length
                // depends on the screen width, so every length is tried.
                let found = (3..=60).step_by(3).find_map(|n| {
                    let chars: Vec<char> = val.chars().collect();
                    let lines: Vec<String> = chars.chunks(n).map(|c| c.iter().collect()).collect();
                    if lines.len() > 3 {
                        return None;
                    }
                    let at: Option<Vec<_>> =
                        lines.iter().map(|l| find(&frame, &mask(l, &FONT_6X13))).collect();
                    at.map(|a| (lines, a))
                });
                match found {
                    Some((lines, at)) => {
                        for (l, (x, y)) in lines.iter().zip(at) {
                            println!("screen shows fingerprint line {l:?} at {x},{y}");
                        }
                    }
                    None => {
                        println!("screen does NOT show the fingerprint {val}");
                        ok = false;
                    }
                }
            }
            _ => {
                eprintln!("unknown option {flag}");
                return ExitCode::from(2);
            }
        }
    }
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
