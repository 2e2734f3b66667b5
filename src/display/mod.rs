//! Pixels: everything that draws the device's state for a person to read.
//!
//! - [`screens`]: pure rendering from a [`DisplayState`] to any embedded-graphics
//!   `DrawTarget<Color = Rgb565>`, and the [`Selector`] that picks the screen.
//! - [`Frame`]: the in-memory Rgb565 framebuffer screens draw into; a [`Panel`] shows it.
//! - [`png`]: the headless backend (frames written as PNG files; PNG bytes for the API).
//! - `spi` (feature `spi`): mipidsi over linux-embedded-hal, and the GPIO button.
//! - [`terminal`]: the pairing QR as Unicode half blocks, for a terminal or `?format=text`.
//! - [`qr`]: the pairing QR as PNG and SVG, for `GET /api/sessions/{sid}/qr`.
//!
//! [`spawn`] starts the display task: it listens to the [`Bus`], keeps a [`DisplayState`],
//! chooses the screen, and redraws at most [`MIN_FRAME_MS`] apart (plus a tick while a
//! countdown shows). Rendering and flushing run on a blocking thread, never on the runtime;
//! a frame equal to the last one flushed is not sent again.

pub mod png;
pub mod qr;
pub mod screens;
#[cfg(feature = "spi")]
pub mod spi;
pub mod terminal;

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::{Config, DisplayBackend};
use crate::events::{Bus, EventKind, Notice, now_ms};

pub use screens::{DisplayState, Press, Screen, Selector, SessionView};

/// Why the display could not draw. The display never stops the gateway: the task logs these
/// and carries on.
#[derive(Debug, thiserror::Error)]
pub enum DisplayError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the frame as PNG: {0}")]
    Png(#[from] ::png::EncodingError),
    #[error("cannot read the PNG: {0}")]
    PngDecode(String),
    #[error("the frame is {got:?} but the panel is {want:?}")]
    Size { got: Size, want: Size },
    #[error("unsupported frame size {0}x{1}: 240..=480 pixels a side")]
    UnsupportedSize(u32, u32),
    #[error("SPI panel: {0}")]
    Spi(String),
    #[error("GPIO: {0}")]
    Gpio(String),
    #[error("the display backend \"spi\" needs a wagate built with the `spi` feature")]
    NoSpiFeature,
}

// ---------------------------------------------------------------------------------------------
// Frame and panels
// ---------------------------------------------------------------------------------------------

/// An Rgb565 framebuffer, row by row from the top left. Allocated once per size.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    size: Size,
    pixels: Box<[Rgb565]>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.size.width, self.size.height)
    }
}

impl Frame {
    pub fn new(size: Size) -> Self {
        let n = size.width as usize * size.height as usize;
        Frame {
            size,
            pixels: vec![Rgb565::BLACK; n].into_boxed_slice(),
        }
    }

    pub fn width(&self) -> u32 {
        self.size.width
    }

    pub fn height(&self) -> u32 {
        self.size.height
    }

    pub fn pixels(&self) -> &[Rgb565] {
        &self.pixels
    }

    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb565> {
        if x < self.size.width && y < self.size.height {
            Some(self.pixels[(y * self.size.width + x) as usize])
        } else {
            None
        }
    }

    /// 8-bit luma per pixel (for QR decoding in tests and tools).
    pub fn luma(&self, x: u32, y: u32) -> u8 {
        use embedded_graphics::pixelcolor::Rgb888;
        let c: Rgb888 = self.pixel(x, y).unwrap_or(Rgb565::WHITE).into();
        ((u32::from(c.r()) * 299 + u32::from(c.g()) * 587 + u32::from(c.b()) * 114) / 1000) as u8
    }
}

impl OriginDimensions for Frame {
    fn size(&self) -> Size {
        self.size
    }
}

impl DrawTarget for Frame {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Infallible>
    where
        I: IntoIterator<Item = Pixel<Rgb565>>,
    {
        let (w, h) = (self.size.width as i32, self.size.height as i32);
        for Pixel(p, c) in pixels {
            if (0..w).contains(&p.x) && (0..h).contains(&p.y) {
                self.pixels[(p.y * w + p.x) as usize] = c;
            }
        }
        Ok(())
    }

    fn fill_solid(
        &mut self,
        area: &embedded_graphics::primitives::Rectangle,
        color: Rgb565,
    ) -> Result<(), Infallible> {
        let area = area.intersection(&self.bounding_box());
        let Some(br) = area.bottom_right() else {
            return Ok(());
        };
        let w = self.size.width as usize;
        let (x0, x1) = (area.top_left.x as usize, br.x as usize);
        for y in area.top_left.y as usize..=br.y as usize {
            self.pixels[y * w + x0..=y * w + x1].fill(color);
        }
        Ok(())
    }

    fn clear(&mut self, color: Rgb565) -> Result<(), Infallible> {
        self.pixels.fill(color);
        Ok(())
    }
}

/// Draw `screen` for `state` into a new frame of `size`.
pub fn render(screen: Screen, state: &DisplayState, size: Size) -> Frame {
    let mut frame = Frame::new(size);
    let Ok(()) = screens::draw(screen, state, &mut frame);
    frame
}

/// Where frames go. `flush` blocks (SPI transfers, file writes): call it off the runtime.
pub trait Panel: Send {
    /// The frame size this panel shows.
    fn size(&self) -> Size;
    /// Show `frame` (of [`Panel::size`]).
    fn flush(&mut self, frame: &Frame) -> Result<(), DisplayError>;
}

/// The `none` backend: frames are drawn (for `/api/display.png`) but shown nowhere.
#[derive(Debug)]
pub struct NoPanel(pub Size);

impl Panel for NoPanel {
    fn size(&self) -> Size {
        self.0
    }

    fn flush(&mut self, _frame: &Frame) -> Result<(), DisplayError> {
        Ok(())
    }
}

/// The panel the configuration asks for.
pub fn open_panel(cfg: &Config) -> Result<Box<dyn Panel>, DisplayError> {
    let (w, h) = cfg.display.frame_size();
    let size = Size::new(w, h);
    match cfg.display.backend {
        DisplayBackend::Png => Ok(Box::new(png::PngPanel::new(cfg.png_path(), size))),
        DisplayBackend::None => Ok(Box::new(NoPanel(size))),
        #[cfg(feature = "spi")]
        DisplayBackend::Spi => Ok(Box::new(spi::SpiPanel::open(&cfg.display)?)),
        #[cfg(not(feature = "spi"))]
        DisplayBackend::Spi => Err(DisplayError::NoSpiFeature),
    }
}

// ---------------------------------------------------------------------------------------------
// The display task
// ---------------------------------------------------------------------------------------------

/// Frames are at least this far apart (at most ~4 per second).
pub const MIN_FRAME_MS: u64 = 250;
/// How often the LAN addresses are read again.
const ADDRESS_REFRESH: Duration = Duration::from_secs(30);

/// A boxed future, for the hooks.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What the display asks of the rest of wagate (the lead wires these to the engine).
pub struct Hooks {
    /// The sessions as they are now: read at start and whenever the bus lagged.
    pub sessions: Box<dyn Fn() -> BoxFuture<Vec<SessionView>> + Send + Sync>,
    /// Restart pairing for a session whose QR codes ran out (the button).
    pub restart_pairing: Box<dyn Fn(String) -> BoxFuture<()> + Send + Sync>,
}

impl Hooks {
    /// No sessions to read, nothing to restart (tests, `none`).
    pub fn none() -> Self {
        Hooks {
            sessions: Box::new(|| Box::pin(async { Vec::new() })),
            restart_pairing: Box::new(|_| Box::pin(async {})),
        }
    }
}

/// Changes that do not travel on the bus.
#[derive(Debug, Clone)]
pub enum Update {
    /// The one-time setup code (`None` once claimed) and the certificate fingerprint.
    Setup {
        code: Option<String>,
        fingerprint: Option<String>,
    },
    /// A session's send queue depth and failed webhook deliveries.
    Counters {
        session: String,
        queue_depth: u32,
        failed_deliveries: u32,
    },
    /// A button press (the GPIO button, or a test).
    Press,
}

/// The running display task. Dropping it stops the task.
pub struct DisplayHandle {
    updates: mpsc::Sender<Update>,
    last: Arc<Mutex<Option<Arc<Frame>>>>,
    task: JoinHandle<()>,
}

/// The last frame the display drew, readable from anywhere (the API serves it as PNG).
#[derive(Clone, Debug, Default)]
pub struct LastFrame(Arc<Mutex<Option<Arc<Frame>>>>);

impl LastFrame {
    pub fn frame(&self) -> Option<Arc<Frame>> {
        self.0.lock().ok().and_then(|g| g.clone())
    }

    /// The frame as PNG; `None` before the first frame.
    pub fn png(&self) -> Option<Result<Vec<u8>, DisplayError>> {
        self.frame().map(|f| png::encode(&f))
    }
}

impl DisplayHandle {
    /// A sender for updates from another task (it waits for room instead of dropping).
    pub fn updates(&self) -> mpsc::Sender<Update> {
        self.updates.clone()
    }

    /// The last frame, as a handle that outlives this borrow.
    pub fn last_frame(&self) -> LastFrame {
        LastFrame(self.last.clone())
    }

    /// Tell the display something the bus does not carry. Never blocks; drops the update
    /// when the task is far behind.
    pub fn update(&self, u: Update) {
        if self.updates.try_send(u).is_err() {
            tracing::debug!("display update dropped");
        }
    }

    /// The last frame drawn.
    pub fn frame(&self) -> Option<Arc<Frame>> {
        self.last.lock().ok().and_then(|g| g.clone())
    }

    /// The last frame drawn, as PNG (for `GET /api/display.png`).
    pub fn png(&self) -> Option<Result<Vec<u8>, DisplayError>> {
        self.frame().map(|f| png::encode(&f))
    }
}

impl Drop for DisplayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Open the configured panel and start the display task.
pub fn spawn(cfg: &Config, bus: &Bus, hooks: Hooks) -> Result<DisplayHandle, DisplayError> {
    let panel = open_panel(cfg)?;
    let (updates, rx) = mpsc::channel(64);
    #[cfg(feature = "spi")]
    let has_button = match cfg.display.button_pin.0 {
        Some(line) => match spi::watch_button(&cfg.display.gpio_chip, line, updates.clone()) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "display button unavailable");
                false
            }
        },
        None => false,
    };
    #[cfg(not(feature = "spi"))]
    let has_button = false;
    let mut state = DisplayState {
        device_name: hostname(),
        api_port: cfg.api.addr.port(),
        tls: cfg.api.tls != crate::config::TlsMode::Off,
        has_button,
        ..DisplayState::default()
    };
    state.addresses = lan_addresses(cfg.api.addr.ip());
    let last = Arc::new(Mutex::new(None));
    let task = tokio::spawn(run(
        panel,
        bus.subscribe(),
        rx,
        hooks,
        state,
        cfg.api.addr.ip(),
        last.clone(),
    ));
    Ok(DisplayHandle {
        updates,
        last,
        task,
    })
}

/// The display loop: apply what happens, redraw when something changed (rate limited) or a
/// countdown ticks.
async fn run(
    panel: Box<dyn Panel>,
    mut notices: broadcast::Receiver<Notice>,
    mut updates: mpsc::Receiver<Update>,
    hooks: Hooks,
    mut state: DisplayState,
    bind: IpAddr,
    last: Arc<Mutex<Option<Arc<Frame>>>>,
) {
    let mut painter = Some(Painter::new(panel));
    let mut selector = Selector::default();
    resync(&mut state, &hooks).await;
    let mut dirty = true;
    let mut last_draw = Instant::now() - Duration::from_secs(1);
    let mut tick: Option<Duration> = None;
    let mut next_addresses = Instant::now() + ADDRESS_REFRESH;

    loop {
        let draw_at = if dirty {
            last_draw + Duration::from_millis(MIN_FRAME_MS)
        } else {
            match tick {
                Some(t) => last_draw + t,
                None => next_addresses,
            }
        };
        tokio::select! {
            n = notices.recv() => match n {
                Ok(n) => dirty |= apply(&mut state, n),
                Err(broadcast::error::RecvError::Lagged(k)) => {
                    tracing::debug!(missed = k, "display lagged; re-reading sessions");
                    resync(&mut state, &hooks).await;
                    dirty = true;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            u = updates.recv() => match u {
                Some(Update::Press) => {
                    state.now_ms = now_ms();
                    match selector.press(&state) {
                        Press::RestartPairing(id) => {
                            tracing::info!(session = %id, "button: restarting pairing");
                            tokio::spawn((hooks.restart_pairing)(id.to_string()));
                        }
                        Press::Show(s) => tracing::debug!(screen = s.name(), "button"),
                    }
                    dirty = true;
                }
                Some(u) => dirty |= apply_update(&mut state, u),
                None => {}
            },
            _ = tokio::time::sleep_until(draw_at) => {
                if Instant::now() >= next_addresses {
                    next_addresses = Instant::now() + ADDRESS_REFRESH;
                    let a = lan_addresses(bind);
                    if a != state.addresses {
                        state.addresses = a;
                        dirty = true;
                    }
                }
                if !dirty && tick.is_none() {
                    continue;
                }
                state.now_ms = now_ms();
                let screen = selector.current(&state);
                tick = screen.tick_ms(&state).map(|ms| Duration::from_millis(ms as u64));
                let Some(p) = painter.take() else { break };
                let snapshot = state.clone();
                let started = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || p.paint(screen, &snapshot)).await {
                    Ok((p, frame)) => {
                        tracing::trace!(screen = screen.name(), took = ?started.elapsed(), "frame");
                        if let Ok(mut g) = last.lock() {
                            *g = Some(frame);
                        }
                        painter = Some(p);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "display thread failed; display stopped");
                        break;
                    }
                }
                dirty = false;
                last_draw = Instant::now();
            }
        }
    }
}

async fn resync(state: &mut DisplayState, hooks: &Hooks) {
    let fresh = (hooks.sessions)().await;
    // Keep the counters the bus does not carry.
    let old = std::mem::take(&mut state.sessions);
    for mut v in fresh {
        if let Some(o) = old.iter().find(|o| o.id == v.id) {
            v.queue_depth = o.queue_depth;
            v.failed_deliveries = o.failed_deliveries;
            if v.phone.is_none() {
                v.phone = o.phone.clone();
            }
        }
        state.upsert(v);
    }
}

/// Apply a bus notice; true when the screen may change.
fn apply(state: &mut DisplayState, notice: Notice) -> bool {
    match notice {
        Notice::State { session, state: s } => {
            match state.session_mut(&session) {
                Some(v) => v.state = s,
                None => state.upsert(SessionView::new(&session, s)),
            }
            true
        }
        Notice::Event(e) => match e.kind {
            EventKind::SessionConnected { phone: Some(p), .. } => {
                if let Some(v) = state.session_mut(&e.session) {
                    v.phone = Some(screens::short(&p));
                }
                true
            }
            _ => false,
        },
        Notice::Queue { session, depth } => match state.session_mut(&session) {
            Some(v) => {
                v.queue_depth = u32::try_from(depth).unwrap_or(u32::MAX);
                true
            }
            None => false,
        },
        Notice::Deliveries { session, failed } => match state.session_mut(&session) {
            Some(v) => {
                v.failed_deliveries = u32::try_from(failed).unwrap_or(u32::MAX);
                true
            }
            None => false,
        },
    }
}

fn apply_update(state: &mut DisplayState, u: Update) -> bool {
    match u {
        Update::Setup { code, fingerprint } => {
            state.setup_code = code.as_deref().map(screens::short);
            state.cert_fingerprint = fingerprint.as_deref().map(screens::short);
        }
        Update::Counters {
            session,
            queue_depth,
            failed_deliveries,
        } => match state.session_mut(&session) {
            Some(v) => {
                v.queue_depth = queue_depth;
                v.failed_deliveries = failed_deliveries;
            }
            None => return false,
        },
        Update::Press => {}
    }
    true
}

/// Owns the panel and two frames: draws into one, flushes it if it differs from the other.
struct Painter {
    panel: Box<dyn Panel>,
    shown: Option<Frame>,
}

impl Painter {
    fn new(panel: Box<dyn Panel>) -> Self {
        Painter { panel, shown: None }
    }

    /// Draw and flush (blocking). Returns the frame drawn.
    fn paint(mut self, screen: Screen, state: &DisplayState) -> (Self, Arc<Frame>) {
        let frame = render(screen, state, self.panel.size());
        if self.shown.as_ref() != Some(&frame) {
            match self.panel.flush(&frame) {
                Ok(()) => self.shown = Some(frame.clone()),
                Err(e) => {
                    tracing::warn!(error = %e, "display flush failed");
                    self.shown = None;
                }
            }
        }
        (self, Arc::new(frame))
    }
}

/// The API's addresses on the LAN: `bind` itself when it is one, else every interface's
/// address except loopback and IPv6 link-local (IPv4 first).
pub fn lan_addresses(bind: IpAddr) -> heapless::Vec<IpAddr, { screens::MAX_ADDRESSES }> {
    let mut out = heapless::Vec::new();
    if !bind.is_unspecified() {
        let _ = out.push(bind);
        return out;
    }
    let mut all: Vec<IpAddr> = match if_addrs::get_if_addrs() {
        Ok(v) => v
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| match ip {
                IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local(),
                IpAddr::V6(a) => !a.is_loopback() && !a.is_unicast_link_local() && !bind.is_ipv4(),
            })
            .collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list network interfaces");
            Vec::new()
        }
    };
    all.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    all.dedup();
    for ip in all {
        if out.push(ip).is_err() {
            break;
        }
    }
    out
}

/// The device's name: the kernel's hostname.
pub fn hostname() -> screens::DeviceName {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| screens::short(s.trim()))
        .filter(|s: &screens::DeviceName| !s.is_empty())
        .unwrap_or_else(|| screens::short("wagate"))
}

impl From<&crate::engine::SessionInfo> for SessionView {
    fn from(i: &crate::engine::SessionInfo) -> Self {
        let mut v = SessionView::new(&i.id, i.state.clone());
        v.phone = i.phone.as_deref().map(screens::short);
        v
    }
}

// ---------------------------------------------------------------------------------------------
// `wagate display render`
// ---------------------------------------------------------------------------------------------

/// The state `wagate display render` draws: the running daemon's sessions (`sessions`, the
/// JSON of its session list) with this device's name and addresses, or the sample for
/// `screen` when no daemon answered.
pub fn render_state(
    screen: Screen,
    cfg: &Config,
    sessions: Option<&serde_json::Value>,
) -> DisplayState {
    let Some(rows) = sessions.and_then(|v| v.as_array()) else {
        return screens::sample(screen);
    };
    let mut state = DisplayState {
        device_name: hostname(),
        addresses: lan_addresses(cfg.api.addr.ip()),
        api_port: cfg.api.addr.port(),
        tls: cfg.api.tls != crate::config::TlsMode::Off,
        has_button: cfg.display.button_pin.0.is_some(),
        now_ms: now_ms(),
        ..DisplayState::default()
    };
    for row in rows {
        let (Some(id), Ok(st)) = (
            row.get("id").and_then(|v| v.as_str()),
            serde_json::from_value::<crate::events::SessionState>(row.clone()),
        ) else {
            continue;
        };
        let mut v = SessionView::new(id, st);
        v.phone = row
            .get("phone")
            .and_then(|p| p.as_str())
            .map(screens::short);
        state.upsert(v);
    }
    state
}

/// Render `screen` for `state` at `width`x`height` as PNG bytes (sizes 240..=480 a side).
pub fn render_png(
    screen: Screen,
    state: &DisplayState,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, DisplayError> {
    if !(240..=480).contains(&width) || !(240..=480).contains(&height) {
        return Err(DisplayError::UnsupportedSize(width, height));
    }
    png::encode(&render(screen, state, Size::new(width, height)))
}
