//! The headless backend: each frame written as a PNG file, atomically (a temporary file in
//! the same directory, then a rename), so a reader never sees half a frame. Also the PNG
//! encoding behind `GET /api/display.png`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;

use super::{DisplayError, Frame, Panel};

/// Writes every flushed frame to `path`.
#[derive(Debug)]
pub struct PngPanel {
    path: PathBuf,
    size: Size,
}

impl PngPanel {
    pub fn new(path: PathBuf, size: Size) -> Self {
        PngPanel { path, size }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Panel for PngPanel {
    fn size(&self) -> Size {
        self.size
    }

    fn flush(&mut self, frame: &Frame) -> Result<(), DisplayError> {
        if frame.size != self.size {
            return Err(DisplayError::Size {
                got: frame.size,
                want: self.size,
            });
        }
        write_atomic(&self.path, &encode(frame)?)
    }
}

/// The frame as an 8-bit RGB PNG (Rgb565 widened exactly as embedded-graphics does).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, DisplayError> {
    let mut rgb = Vec::with_capacity(frame.pixels().len() * 3);
    for &p in frame.pixels() {
        let c: Rgb888 = p.into();
        rgb.extend_from_slice(&[c.r(), c.g(), c.b()]);
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, frame.width(), frame.height());
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_compression(png::Compression::High);
    let mut w = enc.write_header()?;
    w.write_image_data(&rgb)?;
    w.finish()?;
    Ok(out)
}

/// Read a PNG (8-bit RGB or RGBA, as [`encode`] writes) back into a frame: for tests and
/// tools that read the screen from the file.
pub fn decode(bytes: &[u8]) -> Result<Frame, DisplayError> {
    let bad = |e: &dyn std::fmt::Display| DisplayError::PngDecode(e.to_string());
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .map_err(|e| bad(&e))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    let channels = match (info.color_type, info.bit_depth) {
        (png::ColorType::Rgb, png::BitDepth::Eight) => 3,
        (png::ColorType::Rgba, png::BitDepth::Eight) => 4,
        (c, d) => return Err(bad(&format_args!("unsupported PNG format {c:?} {d:?}"))),
    };
    let mut frame = Frame::new(Size::new(info.width, info.height));
    for (i, px) in buf[..info.buffer_size()].chunks_exact(channels).enumerate() {
        frame.pixels[i] = Rgb888::new(px[0], px[1], px[2]).into();
    }
    Ok(frame)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DisplayError> {
    let io = |source| DisplayError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = dir.join(name);
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}
