//! The command line of `postern tls-check`: its arguments, the exit status, and printing
//! the report as text or JSON. The binary only dispatches to [`run`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use postern_tls::Profile;

/// Arguments of `postern tls-check`.
#[derive(Debug, Args)]
pub struct TlsCheckArgs {
    /// HOST or HOST:PORT (default port 25, or 465 with --implicit). IPv6: [ADDR]:PORT.
    pub target: String,
    /// TLS from the first byte (port 465 style) instead of STARTTLS.
    #[arg(long)]
    pub implicit: bool,
    /// The profile to judge against.
    #[arg(long, value_enum, default_value_t = ProfileArg::Default)]
    pub profile: ProfileArg,
    /// PEM file of trust anchors (default: the system trust store).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// The name the certificate must carry (also sent as SNI).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Present this certificate chain (PEM) to test a partner's mutual TLS; needs --client-key.
    #[arg(long, value_name = "CHAIN", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Print the report as JSON (for scheduled scans).
    #[arg(long)]
    pub json: bool,
}

/// `--profile` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProfileArg {
    Default,
    NcscSuiteB,
    NcscFoundation,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Default => Profile::Default,
            ProfileArg::NcscSuiteB => Profile::NcscSuiteB,
            ProfileArg::NcscFoundation => Profile::NcscFoundation,
        }
    }
}

/// Run the scan and print the report. Exit 0: all requirements pass; 1: some fail;
/// 2: the scan could not run (bad arguments, cannot connect, not SMTP).
pub fn run(a: TlsCheckArgs) -> ExitCode {
    let target = match crate::Target::parse(&a.target, a.implicit, a.name.clone()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("postern tls-check: {e}");
            return ExitCode::from(2);
        }
    };
    let client_cert = a.client_cert.as_deref().zip(a.client_key.as_deref());
    let opts = match crate::Options::from_files(a.profile.into(), a.ca.clone(), client_cert) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("postern tls-check: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("postern tls-check: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(crate::scan(&target, &opts)) {
        Ok(report) => {
            if a.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("postern tls-check: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", crate::render_text(&report));
            }
            if report.pass {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("postern tls-check {}:{}: {e}", target.host, target.port);
            ExitCode::from(2)
        }
    }
}
