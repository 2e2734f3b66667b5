//! Display figures: render time and PNG flush time per frame, and PNG size, for every screen
//! at every layout. `cargo bench --bench display_frames` prints a table.

use embedded_graphics::prelude::*;
use wagate::display::screens::sample;
use wagate::display::{Panel as _, Screen, png, render};

const SIZES: [(u32, u32); 3] = [(240, 240), (320, 240), (240, 320)];
const FRAMES: u32 = 50;

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.png");
    println!("display frames, median of {FRAMES} (render; png = encode + write + rename)");
    println!("| size    | screen   | render      | png flush   | PNG bytes |");
    println!("|---------|----------|-------------|-------------|----------:|");
    for (w, h) in SIZES {
        for screen in Screen::ALL {
            let st = sample(screen);
            let size = Size::new(w, h);
            let mut panel = png::PngPanel::new(path.clone(), size);
            let mut renders = Vec::new();
            let mut flushes = Vec::new();
            for _ in 0..FRAMES {
                let t = std::time::Instant::now();
                let frame = render(screen, &st, size);
                renders.push(t.elapsed());
                let t = std::time::Instant::now();
                panel.flush(&frame).expect("flush");
                flushes.push(t.elapsed());
            }
            renders.sort();
            flushes.sort();
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!(
                "| {:<7} | {:<8} | {:>11.2?} | {:>11.2?} | {bytes:>9} |",
                format!("{w}x{h}"),
                screen.name(),
                renders[renders.len() / 2],
                flushes[flushes.len() / 2],
            );
        }
    }
}
