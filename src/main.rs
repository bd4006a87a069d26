//! The `postern` command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use postern::logging::{self, LogFormat};

/// Postern: a mail transfer agent for internet gateways and partner relays, built to the
/// UK NCSC guidance on TLS for mail servers.
#[derive(Debug, Parser)]
#[command(name = "postern", version, after_help = AFTER_HELP)]
struct Cli {
    /// Configuration file (TOML). Without it, the built-in trial configuration is used:
    /// 127.0.0.1:2525, state in ./postern-data, mail for localhost into Maildirs.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "POSTERN_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,

    /// Log format on stderr. The level comes from RUST_LOG (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the mail server in the foreground (until SIGTERM or Ctrl-C).
    Serve,
    /// Validate the configuration, including certificate and key files, and exit.
    /// Problems are printed as FILE:LINE:COL: key: problem; the exit status is 2 if any.
    CheckConfig,
    /// Outbound TLS policy questions.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Show what happens to mail for DOMAIN: the route, the TLS policy entry that applies,
    /// its level and what it checks, and (with --resolve) the hosts that would be tried.
    Explain {
        /// The recipient domain, e.g. partner.gov.uk
        domain: String,
        /// Also ask DNS (the [resolver] servers) for the MX hosts and their addresses.
        #[arg(long)]
        resolve: bool,
    },
}

const AFTER_HELP: &str = "\
Examples:
  postern serve                          trial run with the built-in configuration
  postern check-config -c /etc/postern/postern.toml
  POSTERN_CONFIG=/etc/postern/postern.toml postern serve

Documentation: README.md and docs/ (getting started, configuration reference, message flow).
The annotated reference configuration is config/postern.toml.";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => check_config(cli.config),
        Command::Serve => serve(cli.config, cli.log_format),
        Command::Policy(PolicyCommand::Explain { domain, resolve }) => {
            explain(cli.config, &domain, resolve)
        }
    }
}

fn load_or_report(path: Option<PathBuf>) -> Result<postern::Loaded, ExitCode> {
    postern::config::load(path.as_deref()).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!(
            "postern: {} problem(s) in the configuration; nothing was started",
            errors.len()
        );
        ExitCode::from(2)
    })
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let loaded = match load_or_report(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let c = &loaded.config;
    println!("{}: configuration is valid", loaded.name);
    println!("  hostname:  {}", c.hostname());
    println!("  state_dir: {}", c.server.state_dir.display());
    for l in &c.listener {
        println!(
            "  listener:  {} mode={} require_tls={} max_message_size={}",
            l.address, l.mode, l.require_tls, l.max_message_size
        );
    }
    println!(
        "  local domains: {}",
        if c.relay.local_domains.is_empty() {
            "none (no mail is accepted for delivery here)".to_string()
        } else {
            c.relay.local_domains.join(", ")
        }
    );
    let nets: Vec<String> = c
        .relay
        .trusted_networks
        .iter()
        .map(|n| n.to_string())
        .collect();
    println!(
        "  trusted networks (may relay): {}",
        if nets.is_empty() {
            "none".into()
        } else {
            nets.join(", ")
        }
    );
    for r in &c.route {
        println!("  route:     {} -> {}", r.domain, r.next_hop);
    }
    if c.tls.certificate.is_empty() {
        println!(
            "  warning: no [[tls.certificate]]: self-signed certificates will be generated in {}/tls",
            c.server.state_dir.display()
        );
    }
    ExitCode::SUCCESS
}

fn serve(path: Option<PathBuf>, format: LogFormat) -> ExitCode {
    logging::init(format);
    let loaded = match load_or_report(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if loaded.name == postern::config::EMBEDDED_NAME {
        tracing::info!(
            "no --config given: using the built-in trial configuration (see config/postern.toml for all settings)"
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("postern: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let running = match postern::start(&loaded.config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!(
            "stopping: no new connections are accepted; acknowledged mail stays queued on disk"
        );
        running.stop().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("received SIGINT"),
    }
}

fn explain(path: Option<PathBuf>, domain: &str, resolve: bool) -> ExitCode {
    let loaded = match load_or_report(path) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("postern: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(postern::explain::explain(&loaded.config, domain, resolve)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("postern: {e}");
            ExitCode::from(2)
        }
    }
}
