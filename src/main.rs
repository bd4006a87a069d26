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
    /// Look at and act on the mail queue (works whether the daemon runs or not).
    /// Without --config, /etc/postern/postern.toml is used when it exists.
    #[command(subcommand)]
    Queue(postern_queue::control::cli::QueueCommand),
    /// DKIM signing keys.
    #[command(subcommand)]
    Dkim(postern::auth_cli::DkimCommand),
    /// Print the DNS records to publish, in zone-file syntax: MX, SPF, DKIM, DMARC,
    /// MTA-STS and TLS-RPT for every configured mail domain, and the DANE TLSA records
    /// of the served certificates.
    DnsRecords,
    /// Scan a mail server's TLS (STARTTLS, or implicit TLS with --implicit): protocol
    /// versions, cipher suites, groups, certificates, and a verdict against a profile.
    /// Exit status 0 only if every requirement of the profile passes (1: some fail,
    /// 2: the scan could not run).
    TlsCheck(postern_scan::cli::TlsCheckArgs),
    /// Send one message from standard input through the local daemon (the first
    /// [[listener]]), as /usr/sbin/sendmail does; the binary invoked as `sendmail` behaves
    /// the same. Without --config, /etc/postern/postern.toml is used when it exists.
    Sendmail(postern::sendmail::SendmailArgs),
    /// MTA-STS policies cached for sending (RFC 8461): show, fetch now, or forget one.
    #[command(subcommand)]
    MtaSts(postern_sts::cli::MtaStsCommand),
    /// TLS-RPT and DMARC aggregate reports and the report store: list, show, send-now.
    #[command(subcommand)]
    Reports(postern_reports::cli::ReportsCommand),
    /// Per peer domain and direction: share of mail over TLS, versions, suites, verified
    /// certificates, and a verdict against [tls] profile (docs/operations.md).
    TlsReport(postern_reports::cli::TlsReportArgs),
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
  postern queue list --state active      what is waiting, and why
  postern queue flush --all              retry everything now
  postern dkim keygen --domain example.org --selector s1 --out /etc/postern/dkim
  postern dns-records -c /etc/postern/postern.toml
  postern tls-check mx.example.org --profile ncsc-suite-b --name mx.example.org
  echo 'Subject: hi' | postern sendmail -i root@example.org

Documentation: README.md and docs/ (getting started, configuration reference, message flow).
The annotated reference configuration is config/postern.toml.";

fn main() -> ExitCode {
    postern_config::cli::quiet_on_closed_stdout();
    if postern::sendmail::invoked_as_sendmail() {
        return postern::sendmail::main_classic();
    }
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig => check_config(cli.config),
        Command::Serve => serve(cli.config, cli.log_format),
        Command::Policy(PolicyCommand::Explain { domain, resolve }) => {
            explain(cli.config, &domain, resolve)
        }
        Command::Queue(cmd) => queue(cli.config, cmd),
        Command::Dkim(cmd) => postern::auth_cli::dkim(cmd),
        Command::TlsCheck(args) => postern_scan::cli::run(args),
        Command::Sendmail(args) => postern::sendmail::run(cli.config, args),
        Command::MtaSts(cmd) => load_or_report(cli.config)
            .map_or_else(|code| code, |l| postern::server::mta_sts(cmd, &l.config)),
        Command::Reports(cmd) => load_or_report(cli.config).map_or_else(
            |code| code,
            |l| {
                postern_reports::cli::reports(
                    &l.config.reports,
                    &l.config.server,
                    &l.config.resolver,
                    cmd,
                )
            },
        ),
        Command::TlsReport(a) => load_or_report(cli.config).map_or_else(
            |code| code,
            |l| {
                postern_reports::cli::tls_report(
                    &l.config.server.state_dir,
                    l.config.tls.profile,
                    &a,
                )
            },
        ),
        Command::DnsRecords => load_or_report(cli.config).map_or_else(
            |code| code,
            |l| {
                print!("{}", postern::auth_cli::dns_records_for(&l.config));
                ExitCode::SUCCESS
            },
        ),
    }
}

/// The configuration a Debian package installs.
const SYSTEM_CONFIG: &str = "/etc/postern/postern.toml";

fn queue(path: Option<PathBuf>, cmd: postern_queue::control::cli::QueueCommand) -> ExitCode {
    let path = path.or_else(|| {
        let p = PathBuf::from(SYSTEM_CONFIG);
        p.exists().then_some(p)
    });
    load_or_report(path).map_or_else(|code| code, |l| postern::queue_admin(&l.config, cmd))
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
    let Ok(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let c = &loaded.config;
    println!("{}: configuration is valid", loaded.name);
    print!("{}", c.server.summary());
    let listeners = postern_inbound::tls_checks::summary(&c.listener, &c.relay);
    print!("{listeners}");
    print!("{}", postern_relay::route_summary(&c.route));
    print!("{}", postern_dns::dnssec_summary(&c.resolver));
    let dnssec_off = c.resolver.dnssec == postern_dns::DnssecMode::Off;
    for w in postern_relay::outbound::config::dane_warnings(&c.outbound, dnssec_off) {
        println!("warning: {w}");
    }
    let sts = postern_sts::serve::summary(&c.mta_sts, &c.tls, &c.server);
    print!("{sts}");
    let client = c.outbound.client_certificate.as_ref();
    let keys = c.tls.certificate.iter().map(|k| k.key.as_path());
    let keys = keys
        .chain(client.map(|k| k.key.as_path()))
        .chain(c.auth.dkim_sign.iter().map(|d| d.key.as_path()));
    print!(
        "{}",
        postern_inbound::tls_checks::tls_summary(
            &c.tls,
            &c.listener,
            &c.inbound,
            client.map(|cc| cc.chain.as_path()),
            keys,
            &c.server.state_dir,
        )
    );
    ExitCode::SUCCESS
}

fn serve(path: Option<PathBuf>, format: LogFormat) -> ExitCode {
    logging::init(format);
    let Ok(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    if loaded.name == postern::config::EMBEDDED_NAME {
        tracing::info!(
            "no --config given: using the built-in trial configuration (see config/postern.toml for all settings)"
        );
    }
    let Some(rt) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    rt.block_on(async move {
        let running = match postern::start(&loaded.config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        postern_metrics::systemd::ready(&format!(
            "accepting mail on {}",
            running
                .addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        run_until_stopped(&running).await;
        postern_metrics::systemd::stopping("stopping: finishing messages being received");
        tracing::info!(
            "stopping: no new connections are accepted; acknowledged mail stays queued on disk"
        );
        running.stop().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

/// Serve until SIGTERM or SIGINT; reload on each SIGHUP, telling systemd
/// (`RELOADING=1`, then `READY=1`).
async fn run_until_stopped(running: &postern::Running) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers: only Ctrl-C stops the server");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("received SIGTERM");
                return;
            }
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("received SIGINT");
                return;
            }
            _ = hup.recv() => {
                postern_metrics::systemd::reloading();
                running.reload().await;
                postern_metrics::systemd::ready("reloaded");
            }
        }
    }
}

fn explain(path: Option<PathBuf>, domain: &str, resolve: bool) -> ExitCode {
    let Ok(loaded) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let Some(rt) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    let c = &loaded.config;
    let text = rt.block_on(async {
        let (_, router) = postern::server::outbound(c).map_err(|e| e.to_string())?;
        postern_relay::explain::explain(&router, &c.relay.local_domains, domain, resolve)
            .await
            .map_err(|e| e.to_string())
    });
    match text {
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

fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    builder
        .enable_all()
        .build()
        .inspect_err(|e| eprintln!("postern: cannot start the async runtime: {e}"))
        .ok()
}
