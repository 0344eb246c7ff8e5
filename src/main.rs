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
        /// Log format: human or json.
        #[arg(long, default_value = "human")]
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
        Command::Run {
            config,
            log_format,
            drain_seconds,
        } => {
            init_logging(&log_format);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(run(config, Duration::from_secs(drain_seconds)))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(path: PathBuf, drain: Duration) -> anyhow::Result<()> {
    let loaded = config::load(&path)?;
    let volume = chujing::volume::open_store(&loaded.config.volume)
        .with_context(|| "cannot open the volume store")?;
    let (proxy, listeners) = proxy::start(loaded, volume).await?;
    for l in &listeners {
        tracing::info!(addr = %l.local_addr(), kind = ?l.config.kind, "listening");
    }
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
    proxy::serve(proxy, listeners, shutdown_signal(), drain).await;
    reloader.abort();
    watcher.abort();
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
