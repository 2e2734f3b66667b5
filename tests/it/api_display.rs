//! `GET /api/display.png`: 404 while no display has drawn, then the screen's frame as PNG.

use std::time::{Duration, Instant};

use crate::common::{Options, Server, get};
use wagate::config::{Config, DisplayBackend};
use wagate::display::{self, Hooks};
use wagate::events::Bus;

#[test]
fn the_display_frame_is_served_as_png() {
    let server = Server::start(Options::default());
    let key = server.key(&[wagate::auth::Scope::SessionsRead], None);
    let url = server.url("/api/display.png");
    let r = get(&url, Some(&key));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "no_frame");

    let mut cfg = Config::default();
    cfg.display.backend = DisplayBackend::None;
    // The bus must outlive the display: the task ends when the bus closes.
    let bus = Bus::default();
    let handle = server.block_on(async { display::spawn(&cfg, &bus, Hooks::none()) });
    let handle = handle.unwrap();
    server.state.set_display(handle.last_frame());
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = get(&url, Some(&key));
        if r.status == 200 {
            break r;
        }
        assert!(Instant::now() < deadline, "no frame");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(r.headers.get("content-type").unwrap(), "image/png");
    let frame = display::png::decode(&r.body).unwrap();
    assert_eq!((frame.width(), frame.height()), (240, 240));
    drop(handle);
}
