//! The `wagate` command: the daemon (`wagate run`, the default) and the verbs that manage it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use wagate::auth::{self, KeySpec, Scope, Setup};
use wagate::clock::Clock;
use wagate::config::{self, Config};
use wagate::control::{self, Request, Response};
use wagate::display::Update;
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, Notice, SessionState};
use wagate::net::api::ApiState;
use wagate::net::webhook::{Settings as WebhookSettings, Webhooks};
use wagate::store::{Store, StoreError};

/// Exit status when the store failed and the service should be restarted (EX_TEMPFAIL).
const EXIT_STORE_FAILED: u8 = 75;

#[derive(Parser, Debug)]
#[command(name = "wagate", version, about = "WhatsApp gateway appliance")]
struct Cli {
    /// Configuration file (default: /etc/wagate/wagate.toml when it exists).
    #[arg(long, global = true, env = "WAGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway in the foreground (the default).
    Run,
    /// Manage sessions (through the running daemon, or the store when none runs).
    Session {
        #[command(subcommand)]
        verb: SessionVerb,
    },
    /// Manage API keys (through the running daemon, or the store when none runs).
    Key {
        #[command(subcommand)]
        verb: KeyVerb,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        verb: ConfigVerb,
    },
    /// Draw the display's screens without hardware.
    Display {
        #[command(subcommand)]
        verb: DisplayVerb,
    },
    /// Show the device id, version, addresses, API URL, certificate fingerprint, data dir.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum SessionVerb {
    /// List sessions with their states.
    List,
    /// Create a session.
    Add { name: String },
    /// Delete a session and every key it holds.
    Remove { name: String },
    /// Start a session (with no daemon running: mark it to start with the daemon).
    Start { name: String },
    /// Stop a session; it stays stopped across restarts.
    Stop { name: String },
}

#[derive(Subcommand, Debug)]
enum KeyVerb {
    /// Create an API key and print it (only it) on stdout; it is shown this once.
    /// Creating a key also closes first-boot setup.
    Create {
        /// admin, sessions:read, sessions:write, messages:send, webhooks:manage (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the key to this session (repeatable; not with admin).
        #[arg(long = "session")]
        sessions: Vec<String>,
        /// A name to recognize the key by in listings.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigVerb {
    /// Validate the configuration and print the effective values.
    Check,
}

#[derive(Subcommand, Debug)]
enum DisplayVerb {
    /// Render one screen as PNG: the running daemon's sessions, else a sample state.
    Render {
        /// setup, pairing, status or failure.
        #[arg(long, default_value = "status")]
        screen: wagate::display::Screen,
        /// WIDTHxHEIGHT: 240x240, 320x240, 240x320 (240..=480 a side).
        #[arg(long, default_value = "240x240")]
        size: wagate::config::DisplaySize,
        #[arg(long, default_value = "display.png")]
        out: PathBuf,
        /// Draw the sample state even when a daemon runs.
        #[arg(long)]
        sample: bool,
    },
}

/// glibc gives each thread that allocates under contention its own heap arena, up to eight
/// per core, and memory freed in one arena is not reused by another: over hours the resident
/// size creeps up with fragmentation (the soak showed it). Two arenas serve a daemon with two
/// runtime workers; `MALLOC_ARENA_MAX` in the environment still decides when it is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    let cfg = match config::load(cli.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("wagate: configuration: {e}");
            return ExitCode::from(78); // EX_CONFIG
        }
    };
    init_tracing(&cfg);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .max_blocking_threads(16)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wagate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => run(cfg).await,
            Command::Session { verb } => session(cfg, verb).await.map(|()| ExitCode::SUCCESS),
            Command::Key { verb } => key(cfg, verb).await.map(|()| ExitCode::SUCCESS),
            Command::Config {
                verb: ConfigVerb::Check,
            } => {
                print!("{}", cfg.to_toml_string()?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Display { verb } => display_cmd(cfg, verb).await.map(|()| ExitCode::SUCCESS),
            Command::Info { json } => info(&cfg, json).map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wagate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(cfg: &Config) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // `Config::validate` has checked the directives; "info" only if it was skipped.
    let filter = cfg
        .log
        .level
        .parse::<tracing_subscriber::filter::Targets>()
        .unwrap_or_else(|_| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    // Colours only for a terminal: under systemd stderr is the journal, which would keep
    // the escape codes; the journal stamps each line itself, so no second timestamp there.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let layer = if journal {
        layer.without_time().boxed()
    } else {
        layer.boxed()
    };
    let wanted = filter
        .iter()
        .map(|(_, level)| level)
        .chain(filter.default_level())
        .max();
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
    if let Some(note) = log_level_note(wanted, tracing::level_filters::STATIC_MAX_LEVEL) {
        tracing::warn!("{note}");
    }
}

/// What to say when the configured log level asks for more than this build keeps (release
/// builds compile out debug and trace).
fn log_level_note(
    wanted: Option<tracing::level_filters::LevelFilter>,
    kept: tracing::level_filters::LevelFilter,
) -> Option<String> {
    let wanted = wanted?;
    (wanted > kept).then(|| {
        format!(
            "log.level asks for {wanted} but this release build keeps {kept} and above; \
             a debug build (cargo build) logs every level"
        )
    })
}

fn engine_config(cfg: &Config) -> EngineConfig {
    EngineConfig {
        ws_url: cfg.whatsapp.url.clone(),
        version: cfg.whatsapp.version.tuple(),
        push_name: cfg.whatsapp.push_name.clone(),
        trust_ca_pem: read_trust_ca(cfg),
        media_cache_dir: Some(cfg.store.data_dir.join("media")),
        media_cache_max_bytes: u64::from(cfg.store.media_cache_mb) * 1024 * 1024,
        inline_media_max_bytes: cfg.webhooks.inline_media_max_bytes,
        pacing: cfg.pacing.clone(),
    }
}

/// Open the store for the daemon. A CLI verb that found no daemon holds the store for a
/// moment, so a locked store is retried for a few seconds before giving up.
/// `whatsapp.trust_ca_file` (validated: only a trust-wa-mock build accepts it).
fn read_trust_ca(cfg: &Config) -> Option<Vec<u8>> {
    let path = &cfg.whatsapp.trust_ca_file;
    if path.as_os_str().is_empty() {
        return None;
    }
    match std::fs::read(path) {
        Ok(pem) => Some(pem),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read whatsapp.trust_ca_file");
            None
        }
    }
}

async fn open_store_waiting(cfg: &Config) -> Result<Store> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(&cfg.db_path(), cfg.cache_bytes()) {
            Err(StoreError::Locked) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => {
                return other
                    .with_context(|| format!("opening the store {}", cfg.db_path().display()));
            }
        }
    }
}

/// The daemon.
async fn run(cfg: Config) -> Result<ExitCode> {
    let mut lan = wagate::net::lan::Lan::prepare(&cfg)?; // device id, certificate
    let store = open_store_waiting(&cfg).await?;
    tracing::info!(path = %store.path().display(), "store open");
    // The MQTT endpoint of the outbox follows `[mqtt]` before any session makes an event.
    let mqtt_settings = if cfg.mqtt.enabled() {
        Some(wagate::net::mqtt::Settings::from_config(
            &cfg.mqtt,
            &lan.device_id,
            &cfg.webhooks,
        )?)
    } else {
        None
    };
    {
        let target = mqtt_settings
            .as_ref()
            .map(|s| (s.broker(), cfg.mqtt.events.clone()));
        let now = wagate::events::now_ms();
        store
            .write(move |t| {
                wagate::store::outbox::configure_mqtt(
                    t,
                    target.as_ref().map(|(u, e)| (u.as_str(), e.as_slice())),
                    now,
                )
            })
            .await
            .context("configuring the MQTT endpoint of the outbox")?;
    }
    let bus = Bus::default();
    let mut notices = bus.subscribe();
    let setup = Setup::from_store(&store).await?;
    let mgr = SessionManager::open(
        store.clone(),
        bus.clone(),
        engine_config(&cfg),
        cfg.sessions.autostart && !setup.is_open(),
    )
    .await?;
    if let Some(code) = setup.code() {
        tracing::warn!(
            code = %code,
            "first-boot setup: no API key exists; claim the admin key with \
             POST /api/setup {{\"code\":\"{code}\"}} (or run `wagate key create --scope admin`); \
             sessions start once it is claimed"
        );
    }
    let sessions_task = tokio::spawn(start_sessions_when_claimed(
        setup.clone(),
        mgr.clone(),
        cfg.clone(),
    ));
    let control = control::serve(&cfg.socket_path(), mgr.clone(), setup.clone())?;
    let display = start_display(&cfg, &bus, &mgr); // the screen; stops when dropped
    if let Some(d) = &display {
        // The setup screen shows the one-time code until the device is claimed.
        d.update(Update::Setup {
            code: setup.code(),
            fingerprint: lan.fingerprint(),
        });
        let (s, d2, fingerprint) = (setup.clone(), d.updates(), lan.fingerprint());
        tokio::spawn(async move {
            s.wait_closed().await;
            let _ = d2
                .send(Update::Setup {
                    code: None,
                    fingerprint,
                })
                .await;
        });
    }

    let listener = tokio::net::TcpListener::bind(cfg.api.addr)
        .await
        .with_context(|| format!("binding the API to {}", cfg.api.addr))?;
    let local = listener.local_addr()?;
    let scheme = if lan.tls.is_some() { "HTTPS" } else { "HTTP" };
    tracing::info!(addr = %local, "{scheme} API listening");
    let api_state = ApiState::new(
        mgr.clone(),
        setup.clone(),
        cfg.api.body_limit_kb as usize * 1024,
    );
    if let Some(d) = &display {
        api_state.set_display(d.last_frame());
    }
    api_state.set_lan(lan.api_info(&cfg));
    api_state.set_header_timeout(std::time::Duration::from_secs(u64::from(
        cfg.api.header_timeout_secs,
    )));
    let webhooks = Webhooks::spawn(
        store.clone(),
        mgr.bus(),
        WebhookSettings {
            prune_every: std::time::Duration::from_secs(
                60 * u64::from(cfg.store.retention_interval_minutes),
            ),
            ..WebhookSettings::from(&cfg.webhooks)
        },
        Clock::system(),
    );
    api_state.set_webhooks(webhooks.clone());
    let mqtt = match mqtt_settings {
        Some(settings) => Some(wagate::net::mqtt::Mqtt::spawn(
            settings,
            store.clone(),
            mgr.clone(),
            Clock::system(),
        )?),
        None => None,
    };
    if let Some(m) = &mqtt {
        api_state.set_mqtt(m.clone());
    }
    let retention = wagate::store::retention::spawn(
        store.clone(),
        Clock::system(),
        wagate::store::retention::Settings::from(&cfg.store),
    );
    let (api_stop, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(lan.serve(listener, api_state, async move {
        let _ = api_stopped.await;
    }));
    lan.announce(&cfg, local);
    notify_systemd(&mgr); // store, engine and API are up: READY=1, then watchdog pings

    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut failed = store.failed();
    let terminal_qr = cfg.display.terminal_qr;
    let code = loop {
        tokio::select! {
            _ = sigterm.recv() => break ExitCode::SUCCESS,
            _ = sigint.recv() => break ExitCode::SUCCESS,
            _ = failed.wait_for(|f| *f) => break ExitCode::from(EXIT_STORE_FAILED),
            notice = notices.recv() => match notice {
                Ok(Notice::State { session, state: SessionState::Qr { code, expires_at, .. } })
                    if terminal_qr && !code.is_empty() =>
                {
                    print_qr(&session, &code, expires_at);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break ExitCode::SUCCESS,
            },
        }
    };
    tracing::info!("shutting down");
    lan.stop().await;
    let _ = api_stop.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(5), api).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the API server ended with an error"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the API server task failed"),
        Err(_) => tracing::warn!("the API server did not finish its requests in 5 s"),
    }
    sessions_task.abort();
    control.abort();
    webhooks.stop();
    if let Some(m) = &mqtt {
        m.stop().await;
    }
    retention.abort();
    mgr.shutdown().await;
    let _ = std::fs::remove_file(cfg.socket_path());
    drop(mgr);
    store.close();
    tracing::info!("stopped");
    Ok(code)
}

/// Once first-boot setup is closed (at once if it is): create the default session if none
/// exists, and start the enabled ones if they were held back by setup.
async fn start_sessions_when_claimed(setup: Setup, mgr: SessionManager, cfg: Config) {
    let held_back = setup.is_open();
    setup.wait_closed().await;
    let result: Result<()> = async {
        let sessions = mgr.list().await?;
        if held_back && cfg.sessions.autostart {
            for s in sessions.iter().filter(|s| s.enabled) {
                mgr.start(&s.id).await?;
            }
        }
        if sessions.is_empty() {
            let id = &cfg.sessions.default_session;
            mgr.create(id, true).await?;
            tracing::info!(session = %id, "created the default session");
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "could not start the sessions");
    }
}

fn print_qr(session: &str, code: &str, expires_at: i64) {
    let secs = (expires_at - wagate::events::now_ms()).max(0) / 1000;
    match wagate::display::terminal::qr_text(code) {
        Ok(text) => println!(
            "\nSession '{session}': scan in WhatsApp > Linked devices > Link a device \
             (valid {secs} s)\n{text}"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot draw the QR code"),
    }
}

/// `wagate info`: read from the data directory (safe while the daemon runs).
fn info(cfg: &Config, json: bool) -> Result<()> {
    let addresses = wagate::display::lan_addresses(cfg.api.addr.ip()).to_vec();
    let info = wagate::net::lan::info(cfg, addresses)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("{info}");
    }
    Ok(())
}

/// `wagate session ...`: through the daemon when it runs, else on the store directly.
async fn session(cfg: Config, verb: SessionVerb) -> Result<()> {
    let req = match verb {
        SessionVerb::List => Request::SessionList,
        SessionVerb::Add { name } => Request::SessionAdd { id: name },
        SessionVerb::Remove { name } => Request::SessionRemove { id: name },
        SessionVerb::Start { name } => Request::SessionStart { id: name },
        SessionVerb::Stop { name } => Request::SessionStop { id: name },
    };
    let list = matches!(req, Request::SessionList);
    let response = match control::call(&cfg.socket_path(), &req).await? {
        Some(r) => r,
        None => {
            let store = open_store_for_cli(&cfg)?;
            let mgr =
                SessionManager::open(store, Bus::default(), engine_config(&cfg), false).await?;
            let r = control::execute(&mgr, None, req, false).await;
            mgr.shutdown().await;
            mgr.store().close();
            r
        }
    };
    print_response(response, list)
}

/// The store for a CLI verb when no daemon answers on the control socket.
fn open_store_for_cli(cfg: &Config) -> Result<Store> {
    match Store::open(&cfg.db_path(), cfg.cache_bytes()) {
        Err(StoreError::Locked) => bail!(
            "the store is in use by a running daemon, but its control socket {} does not answer",
            cfg.socket_path().display()
        ),
        other => other.context("opening the store"),
    }
}

/// `wagate key create ...`: through the daemon when it runs, else on the store directly.
async fn key(cfg: Config, verb: KeyVerb) -> Result<()> {
    let KeyVerb::Create {
        scopes,
        sessions,
        name,
    } = verb;
    let spec = KeySpec {
        scopes: scopes
            .iter()
            .map(|s| s.parse::<Scope>())
            .collect::<Result<_, _>>()?,
        sessions: (!sessions.is_empty()).then_some(sessions),
        name,
    };
    let token = match control::call(&cfg.socket_path(), &Request::KeyCreate(spec.clone())).await? {
        Some(response) => {
            if let Some(e) = response.error {
                bail!("{e}");
            }
            response
                .result
                .as_ref()
                .and_then(|r| r.get("key"))
                .and_then(|k| k.as_str())
                .map(str::to_string)
                .context("the daemon's answer holds no key")?
        }
        None => {
            let store = open_store_for_cli(&cfg)?;
            auth::create_key(&store, spec).await?.token
        }
    };
    println!("{token}");
    Ok(())
}

fn print_response(response: Response, list: bool) -> Result<()> {
    if let Some(e) = response.error {
        bail!("{e}");
    }
    let value = response.result.unwrap_or_default();
    if list {
        let rows = value.as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            println!("no sessions");
        }
        for s in rows {
            let field = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
            let mut line = format!("{:<20} {:<13}", field("id"), field("state"));
            if let Some(reason) = s.get("reason").and_then(|v| v.as_str()) {
                line.push_str(&format!(" ({reason})"));
            }
            line.push_str(&format!(" {}", field("phone")));
            if s.get("enabled") == Some(&serde_json::Value::Bool(false)) {
                line.push_str(" [disabled]");
            }
            println!("{}", line.trim_end());
        }
    } else {
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

/// `wagate display render`: one screen to a PNG file, from the daemon's sessions when it runs.
async fn display_cmd(cfg: Config, verb: DisplayVerb) -> Result<()> {
    let DisplayVerb::Render {
        screen,
        size,
        out,
        sample,
    } = verb;
    let live = match sample {
        true => None,
        false => control::call(&cfg.socket_path(), &Request::SessionList)
            .await
            .ok()
            .flatten(),
    };
    let sessions = live.and_then(|r| r.result);
    let state = wagate::display::render_state(screen, &cfg, sessions.as_ref());
    let png = wagate::display::render_png(screen, &state, size.0, size.1)?;
    std::fs::write(&out, png).with_context(|| format!("writing {}", out.display()))?;
    let from = if sessions.is_some() {
        "the running daemon"
    } else {
        "a sample state"
    };
    println!("{} ({size}, {from}) -> {}", screen.name(), out.display());
    Ok(())
}

/// The display task for `[display]` (png, none, or spi when built with it). A display that
/// cannot start is logged, never fatal: the gateway runs without its screen.
fn start_display(
    cfg: &Config,
    bus: &Bus,
    mgr: &SessionManager,
) -> Option<wagate::display::DisplayHandle> {
    let (list, start) = (mgr.clone(), mgr.clone());
    let hooks = wagate::display::Hooks {
        sessions: Box::new(move || {
            let m = list.clone();
            Box::pin(async move {
                let all = m.list().await.unwrap_or_default();
                all.iter().map(Into::into).collect()
            })
        }),
        restart_pairing: Box::new(move |id| {
            let m = start.clone();
            Box::pin(async move {
                if let Err(e) = m.start(&id).await {
                    tracing::warn!(session = %id, error = %e, "cannot restart pairing");
                }
            })
        }),
    };
    match wagate::display::spawn(cfg, bus, hooks) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::error!(error = %e, "display unavailable");
            None
        }
    }
}

/// systemd integration for `Type=notify` units (systemd/wagate.service). Called once the
/// store is open, the sessions are restored and the API listens: tells systemd READY=1, then,
/// when the unit sets `WatchdogSec`, pings WATCHDOG=1 at half that period for as long as the
/// engine answers a session list within a quarter of it (the manager's lock and a store
/// read on the blocking pool). A wedged engine stops the pings and systemd restarts the
/// service. Without `NOTIFY_SOCKET` (not started by systemd) it does nothing.
fn notify_systemd(mgr: &SessionManager) {
    use sd_notify::NotifyState;
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd the service is ready");
    }
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    let mgr = mgr.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(period / 4, mgr.list()).await {
                Ok(Ok(_)) => {
                    if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                        tracing::warn!(error = %e, "cannot ping the systemd watchdog");
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "watchdog: the engine failed; no ping"),
                Err(_) => tracing::warn!("watchdog: the engine did not answer in time; no ping"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::log_level_note;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn a_log_level_the_build_compiled_out_is_named() {
        let note = log_level_note(Some(LevelFilter::DEBUG), LevelFilter::INFO).unwrap();
        assert!(note.contains("debug") && note.contains("info"), "{note}");
        assert_eq!(
            log_level_note(Some(LevelFilter::INFO), LevelFilter::INFO),
            None
        );
        assert_eq!(
            log_level_note(Some(LevelFilter::WARN), LevelFilter::INFO),
            None
        );
        assert_eq!(
            log_level_note(Some(LevelFilter::TRACE), LevelFilter::TRACE),
            None
        );
        assert_eq!(log_level_note(None, LevelFilter::INFO), None);
    }
}
