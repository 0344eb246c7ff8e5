//! The `chujing` command line. Parsing and exit codes only: the work is in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use chujing::cli;
use chujing::config;
use chujing::proxy;

// The proxy's per-request allocations (hyper buffers, header maps, the scanner window) are
// many, short-lived and crossed between worker threads; mimalloc's thread-local free lists
// serve them without glibc's consolidation passes (measured in benches/load/README.md).
#[global_allocator]
static GLOBAL: chujing::alloc::Mimalloc = chujing::alloc::Mimalloc;

#[derive(Parser)]
#[command(
    name = "chujing",
    version,
    about = "Egress proxy enforcing PIPL cross-border transfer rules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic on the configured listeners.
    Run {
        #[arg(long, default_value = "config/chujing.toml")]
        config: PathBuf,
        /// Log format: human or json (default: $CHUJING_LOG_FORMAT, else human).
        #[arg(long, default_value = "")]
        log_format: String,
        /// Seconds to let in-flight requests finish after SIGTERM.
        #[arg(long, default_value_t = 30)]
        drain_seconds: u64,
    },
    /// Validate a configuration; exit 1 with `file:line: message` lines.
    Check {
        #[arg(long, default_value = "config/chujing.toml")]
        config: PathBuf,
    },
    /// Scan files for personal information; one JSON line per file.
    Scan {
        /// Configuration for classification options and custom detectors (optional).
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Distinct individuals per transfer and year, from the volume store.
    Report {
        #[arg(long, default_value = "config/chujing.toml")]
        config: PathBuf,
        /// Calendar year (default: all years in the store).
        #[arg(long)]
        year: Option<i32>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Explain the decision for a request without sending it.
    Explain {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        url: String,
        #[arg(long, default_value = "POST")]
        method: String,
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        #[arg(long = "header")]
        headers: Vec<String>,
        #[arg(long)]
        body: Option<PathBuf>,
        /// RFC 3339 time to decide at (default: now).
        #[arg(long)]
        at: Option<String>,
    },
    /// Manage the CA that signs certificates for intercepted HTTPS (CONNECT) traffic.
    Ca {
        #[command(subcommand)]
        action: CaCommand,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a CA key (mode 0600) and certificate, and print how to trust it.
    Init {
        /// Directory for chujing-ca.pem and chujing-ca.key.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Common name of the CA certificate.
        #[arg(long, default_value = "chujing interception CA")]
        name: String,
        /// Replace existing CA files (clients trusting the old CA must be updated).
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chujing: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Check { config } => {
            let problems = cli::check(&config);
            if problems.is_empty() {
                println!("{}: ok", config.display());
                Ok(ExitCode::SUCCESS)
            } else {
                for p in &problems {
                    eprintln!("{p}");
                }
                Ok(ExitCode::from(1))
            }
        }
        Command::Scan { config, files } => {
            let cfg = match config {
                Some(path) => config::load(&path)?.config,
                None => config::parse("", std::path::Path::new("<defaults>"))?,
            };
            let classifier = Arc::new(chujing::classify::Classifier::new(
                chujing::classify::ClassifierOptions::from_config(&cfg)?,
            )?);
            let policy = chujing::policy::Policy::from_config(&cfg)?;
            let today = policy.local_date(chrono::Utc::now());
            let mut failed = false;
            for file in &files {
                match cli::scan::scan_file(&classifier, file, today) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("chujing: cannot scan {}: {e}", file.display());
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Explain {
            config,
            url,
            method,
            ip,
            headers,
            body,
            at,
        } => {
            let loaded = config::load(&config)?;
            let headers = headers
                .iter()
                .map(|h| cli::explain::parse_header(h))
                .collect::<Result<Vec<_>, _>>()?;
            let body = body
                .map(|p| {
                    std::fs::read(&p).with_context(|| format!("cannot read --body {}", p.display()))
                })
                .transpose()?;
            let at = at
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(&s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .with_context(|| format!("--at {s:?} is not an RFC 3339 time such as 2026-03-01T10:00:00+08:00"))
                })
                .transpose()?;
            let req = cli::explain::ExplainRequest {
                url,
                method,
                ip,
                headers,
                body,
                at,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let explanation = rt.block_on(cli::explain::explain(&loaded, &req))?;
            println!("{}", serde_json::to_string_pretty(&explanation)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ca {
            action: CaCommand::Init { out, name, force },
        } => {
            let files = chujing::tls::ca::init(&out, &name, force)?;
            print!("{}", chujing::tls::ca::trust_instructions(&files));
            Ok(ExitCode::SUCCESS)
        }
        Command::Report { config, year, json } => {
            let loaded = config::load(&config)?;
            let policy = chujing::policy::Policy::from_config(&loaded.config)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut rows = rt.block_on(async {
                let store = chujing::volume::open_store_with(
                    &loaded.config.volume,
                    chujing::volume::VolumeOptions::from_config(&loaded.config),
                )?;
                store.report(year).await
            })?;
            chujing::volume::report::with_current_caps(&mut rows, |id| policy.transfer_caps(id));
            if json {
                println!("{}", chujing::volume::report::render_json(&rows));
            } else {
                print!("{}", chujing::volume::report::render_table(&rows));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            config,
            log_format,
            drain_seconds,
        } => {
            init_logging(&log_format)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run(config, Duration::from_secs(drain_seconds)))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    use chujing::telemetry::LogFormat;
    let format = match format {
        "" => LogFormat::from_env()?.unwrap_or_default(),
        f => f.parse::<LogFormat>()?,
    };
    chujing::telemetry::logging::init(format, None)?;
    Ok(())
}

async fn run(path: PathBuf, drain: Duration) -> anyhow::Result<()> {
    use chujing::telemetry::admin;
    let loaded = config::load(&path)?;
    let audit = Arc::new(chujing::audit::AuditLog::from_config(&loaded.config.audit)?);
    let mut options = chujing::volume::VolumeOptions::from_config(&loaded.config);
    let sink_audit = Arc::clone(&audit);
    // The proxy (and its metrics) is built after the store; the sink finds it once it exists.
    let sink_proxy: Arc<std::sync::OnceLock<Arc<proxy::Proxy>>> = Arc::default();
    let sink_proxy_for_sink = Arc::clone(&sink_proxy);
    options.guard.sink = Some(Arc::new(move |event: &chujing::volume::WatermarkEvent| {
        if let Some(p) = sink_proxy_for_sink.get() {
            p.metrics().watermark(event);
        }
        tracing::warn!(
            year = event.year,
            class = event.class,
            threshold = event.threshold,
            count = event.count,
            level = event.level.as_str(),
            covered = event.covered,
            "entity-wide volume watermark crossed"
        );
        if let Err(e) = sink_audit.write_watermark(event) {
            tracing::error!(error = %e, "audit write failed");
        }
    }));
    let volume = chujing::volume::open_store_with(&loaded.config.volume, options)
        .context("cannot open the volume store")?;
    let admin_bind: std::net::SocketAddr = match &loaded.config.admin {
        Some(a) => a.bind,
        None => admin::DEFAULT_ADMIN_BIND
            .parse()
            .expect("the default admin bind parses"),
    };
    let admin_token = admin::resolve_token(
        loaded
            .config
            .admin
            .as_ref()
            .and_then(|a| a.token.as_deref()),
    );
    let (proxy, listeners) = proxy::start_with_audit(loaded, volume, audit).await?;
    let _ = sink_proxy.set(Arc::clone(&proxy));
    let admin_listener = tokio::net::TcpListener::bind(admin_bind)
        .await
        .with_context(|| {
            format!("cannot listen on the admin address {admin_bind}; set [admin] bind")
        })?;
    let mut own: Vec<std::net::SocketAddr> = listeners.iter().map(|l| l.local_addr()).collect();
    own.push(admin_listener.local_addr()?);
    proxy.set_own_addresses(own);
    for l in &listeners {
        tracing::info!(addr = %l.local_addr(), kind = ?l.config.kind, "listening");
    }
    tracing::info!(addr = %admin_listener.local_addr()?, "admin listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let admin_task = tokio::spawn(admin::serve_admin(
        admin_listener,
        admin::AdminState {
            metrics: Arc::clone(proxy.metrics()),
            status: Arc::clone(&proxy) as Arc<dyn admin::StatusSource>,
            token: admin_token,
            live: Some(proxy.live().clone()),
        },
        stopped(stop_rx.clone()),
    ));
    // The live view's transfers panel: policy validity joined with the volume report.
    let transfers = chujing::live::ReportedTransfers::new();
    proxy.live().set_transfer_source(transfers.clone());
    let transfers_task = transfers.spawn_refresh(&proxy, Duration::from_secs(10));
    let probe = tokio::spawn(proxy::status::probe_volume(
        Arc::clone(&proxy),
        Duration::from_secs(5),
    ));
    let reloader = {
        let proxy = Arc::clone(&proxy);
        let path = path.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                proxy.reload_logged(&path, "sighup");
            }
        })
    };
    let watcher = tokio::spawn(proxy::reload::watch_files(
        Arc::clone(&proxy),
        path.clone(),
        Duration::from_secs(2),
    ));
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; draining");
        let _ = stop_tx.send(true);
    });
    proxy::serve(proxy, listeners, stopped(stop_rx), drain).await;
    reloader.abort();
    watcher.abort();
    probe.abort();
    transfers_task.abort();
    let _ = admin_task.await;
    tracing::info!("drained; exiting");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
