//! The `wagate` command: the daemon (`wagate run`, the default) and the verbs that manage it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};

use wagate::config::{self, Config};
use wagate::control::{self, Request, Response};
use wagate::engine::{EngineConfig, SessionManager};
use wagate::events::{Bus, Notice, SessionState};
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

fn main() -> ExitCode {
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
            Command::Config {
                verb: ConfigVerb::Check,
            } => {
                print!("{}", cfg.to_toml_string()?);
                Ok(ExitCode::SUCCESS)
            }
            Command::Display { verb } => display_cmd(cfg, verb).await.map(|()| ExitCode::SUCCESS),
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
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn engine_config(cfg: &Config) -> EngineConfig {
    EngineConfig {
        ws_url: cfg.whatsapp.url.clone(),
        version: cfg.whatsapp.version.tuple(),
        push_name: cfg.whatsapp.push_name.clone(),
    }
}

fn open_store(cfg: &Config) -> Result<Store> {
    let path = cfg.db_path();
    Store::open(&path, cfg.cache_bytes())
        .with_context(|| format!("opening the store {}", path.display()))
}

/// The daemon.
async fn run(cfg: Config) -> Result<ExitCode> {
    let store = open_store(&cfg)?;
    tracing::info!(path = %store.path().display(), "store open");
    let bus = Bus::default();
    let mut notices = bus.subscribe();
    let mgr = SessionManager::open(
        store.clone(),
        bus.clone(),
        engine_config(&cfg),
        cfg.sessions.autostart,
    )
    .await?;
    if mgr.list().await?.is_empty() {
        let id = &cfg.sessions.default_session;
        mgr.create(id, true).await?;
        tracing::info!(session = %id, "created the default session");
    }
    let control = control::serve(&cfg.socket_path(), mgr.clone())?;
    let _display = start_display(&cfg, &bus, &mgr); // the screen; stops when dropped

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
    control.abort();
    mgr.shutdown().await;
    let _ = std::fs::remove_file(cfg.socket_path());
    drop(mgr);
    drop(store);
    tracing::info!("stopped");
    Ok(code)
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
            let store = match Store::open(&cfg.db_path(), cfg.cache_bytes()) {
                Err(StoreError::Locked) => bail!(
                    "the store is in use by a running daemon, but its control socket {} does \
                     not answer",
                    cfg.socket_path().display()
                ),
                other => other.context("opening the store")?,
            };
            let mgr =
                SessionManager::open(store, Bus::default(), engine_config(&cfg), false).await?;
            let r = control::execute(&mgr, req, false).await;
            mgr.shutdown().await;
            r
        }
    };
    print_response(response, list)
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
