//! The dashboard in a real browser: headless Debian chromium driven by playwright-core
//! (`tests/browser/smoke.mjs`) against a real API server on a real socket. Needs node, chromium
//! and `npm ci` in tests/browser: `.ci/browser.sh` sets that up and runs this test.
//!
//! It proves the page signs in with a key (a wrong one shows the API's error), lists the
//! sessions and turns "Live" on the event stream, creates a session that then shows its live
//! state, keeps the key in sessionStorage across a reload, fits a 390 px phone screen, and
//! forgets the key on sign-out. Screenshots at desktop and phone widths go to
//! `$CARGO_TARGET_TMPDIR/dashboard-screens`.

mod common;

use common::*;

#[test]
#[ignore = "needs node, chromium and tests/browser/node_modules: run .ci/browser.sh"]
fn dashboard_signs_in_lists_creates_and_signs_out_in_chromium() {
    let srv = Server::start(Options::default());
    let key = srv.admin();
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screens");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/smoke.mjs");
    let out = std::process::Command::new("node")
        .arg(script)
        .arg(format!("{}/", srv.base))
        .arg(&key)
        .arg(&shots)
        .output()
        .expect("node");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("dashboard smoke: ok"), "{stdout}{stderr}");
    for name in ["sessions-desktop.png", "sessions-phone.png"] {
        assert!(shots.join(name).metadata().unwrap().len() > 1000, "{name}");
    }
    println!("screenshots in {}", shots.display());
}
