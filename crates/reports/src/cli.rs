//! `postern reports list|show|send-now` and `postern tls-report`: the logic behind the
//! commands (src/main.rs only parses and dispatches).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::ReportsConfig;
use crate::event::Event;
use crate::send::{answer_path, trigger_path, window};
use crate::store::{days, events_dir, read};
use crate::tlsrpt::build;

/// `postern reports ...`
#[derive(Debug, clap::Subcommand)]
pub enum ReportsCommand {
    /// The days in the report store, with outbound TLS sessions per policy domain
    /// (successful / failed; our own report mail not counted).
    List,
    /// Print the TLS-RPT report(s) (RFC 8460 JSON) for DAY as they would be sent; with
    /// --dmarc, the DMARC aggregate report(s) (XML) instead.
    Show {
        /// `yesterday` (default), `today` (so far) or YYYY-MM-DD (UTC).
        #[arg(default_value = "yesterday")]
        day: String,
        /// Only the report for this policy domain.
        #[arg(long)]
        domain: Option<String>,
        /// The DMARC aggregate reports (RFC 7489 XML), one per policy domain (found in
        /// DNS with the [resolver] servers, as the daily run does).
        #[arg(long)]
        dmarc: bool,
    },
    /// Ask the running daemon to send the reports for DAY now (TLS-RPT, and DMARC
    /// aggregate reports when `[reports] dmarc` is on), and print what it did.
    SendNow {
        /// `today` (so far: the default), `yesterday` or YYYY-MM-DD (UTC).
        #[arg(default_value = "today")]
        day: String,
    },
}

/// Run a `postern reports` command.
pub fn reports(
    cfg: &ReportsConfig,
    server: &postern_config::server::ServerConfig,
    resolver: &postern_dns::ResolverConfig,
    cmd: ReportsCommand,
) -> ExitCode {
    let (state_dir, hostname) = (server.state_dir.as_path(), &server.hostname());
    match cmd {
        ReportsCommand::List => list(state_dir),
        ReportsCommand::Show {
            day,
            domain,
            dmarc: false,
        } => show(cfg, state_dir, hostname, &day, domain.as_deref()),
        ReportsCommand::Show {
            day,
            domain,
            dmarc: true,
        } => show_dmarc(cfg, state_dir, hostname, resolver, &day, domain.as_deref()),
        ReportsCommand::SendNow { day } => match send_now(state_dir, &day, Duration::from_secs(60))
        {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("postern: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn list(state_dir: &Path) -> ExitCode {
    let dir = events_dir(state_dir);
    let all = match days(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("postern: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    if all.is_empty() {
        println!("the report store {} is empty", dir.display());
    }
    for (day, path, size) in all {
        let Ok((begin, end)) = day_bounds(&day) else {
            continue;
        };
        let r = read(&dir, begin, end).unwrap_or_default();
        // Per policy domain: successful and failed TLS sessions (as reported), and
        // plaintext sessions without a policy (not reported).
        let mut per: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        let (mut inbound, mut dmarc) = (0, 0);
        for e in &r.events {
            match e {
                Event::Outbound(o) if !o.own_report => {
                    let c = per.entry(o.policy_domain.clone()).or_default();
                    if !crate::tlsrpt::counted(o) {
                        c.2 += 1;
                    } else if o.result.is_some() {
                        c.1 += 1;
                    } else {
                        c.0 += 1;
                    }
                }
                Event::Inbound(_) => inbound += 1,
                Event::Dmarc(_) => dmarc += 1,
                _ => {}
            }
        }
        println!(
            "{day}  {} records, {} bytes{}; {inbound} inbound messages, {dmarc} DMARC evaluations ({})",
            r.events.len(),
            size,
            if r.skipped > 0 {
                format!(", {} damaged lines skipped", r.skipped)
            } else {
                String::new()
            },
            path.display()
        );
        for (d, (ok, failed, plain)) in per {
            let plain = if plain > 0 {
                format!(", {plain} in plaintext (no TLS policy: not in TLS-RPT)")
            } else {
                String::new()
            };
            println!("    {d}: {ok} successful, {failed} failed outbound TLS sessions{plain}");
        }
    }
    ExitCode::SUCCESS
}

fn day_bounds(day: &str) -> Result<(u64, u64), ()> {
    let t = crate::store::day_start(day).ok_or(())?;
    Ok((t, t + 86_400))
}

/// The window `day` names and the store's events in it, or the exit code after saying
/// why not.
fn day_events(state_dir: &Path, day: &str) -> Result<(u64, u64, Vec<Event>), ExitCode> {
    let now = postern_queue::unix_now();
    let (begin, end) = match day {
        "today" | "yesterday" => window(day, now),
        d => match day_bounds(d) {
            Ok(w) => w,
            Err(()) => {
                eprintln!("postern: {d:?} is not a day: use YYYY-MM-DD, today or yesterday");
                return Err(ExitCode::from(2));
            }
        },
    };
    match read(&events_dir(state_dir), begin, end) {
        Ok(r) => Ok((begin, end, r.events)),
        Err(e) => {
            eprintln!("postern: cannot read the report store: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

fn show_dmarc(
    cfg: &ReportsConfig,
    state_dir: &Path,
    hostname: &str,
    resolver: &postern_dns::ResolverConfig,
    day: &str,
    domain: Option<&str>,
) -> ExitCode {
    let (begin, end, events) = match day_events(state_dir, day) {
        Ok(w) => w,
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
    // The resolver is built inside the runtime, as hickory expects.
    let _in_runtime = rt.enter();
    let dns = match postern_dns::Resolver::new(resolver) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("postern: cannot use [resolver]: {e}");
            return ExitCode::FAILURE;
        }
    };
    let policy_domains = rt.block_on(crate::dmarc::policy_domains(&dns, &events, begin, end));
    for (from, e) in &policy_domains.unknown {
        eprintln!(
            "postern: warning: {from}: left out, as the daily run leaves it out: the domain whose DMARC record applies is unknown ({e})"
        );
    }
    let who = cfg.submitter(hostname);
    let reports: Vec<_> =
        crate::dmarc::build_by_policy_domain(&events, begin, end, &who, &policy_domains)
            .into_iter()
            .filter(|r| domain.is_none_or(|d| d.eq_ignore_ascii_case(&r.domain)))
            .collect();
    if reports.is_empty() {
        eprintln!("no DMARC evaluations to report for {day}");
    }
    for r in reports {
        print!("{}", r.xml);
    }
    ExitCode::SUCCESS
}

fn show(
    cfg: &ReportsConfig,
    state_dir: &Path,
    hostname: &str,
    day: &str,
    domain: Option<&str>,
) -> ExitCode {
    let (begin, end, events) = match day_events(state_dir, day) {
        Ok(w) => w,
        Err(code) => return code,
    };
    let who = cfg.submitter(hostname);
    let reports: Vec<_> = build(&events, begin, end, &who)
        .into_iter()
        .filter(|r| domain.is_none_or(|d| d.eq_ignore_ascii_case(&r.policy_domain)))
        .collect();
    if reports.is_empty() {
        eprintln!("no outbound sessions to report for {day}");
    }
    for r in reports {
        println!(
            "{}",
            serde_json::to_string_pretty(&r.json).unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}

/// Ask the daemon (through the trigger file it polls every second) to send the reports
/// for `day`; its answer, or why there is none.
pub fn send_now(state_dir: &Path, day: &str, wait: Duration) -> Result<String, String> {
    let trigger = trigger_path(state_dir);
    let answer = answer_path(state_dir);
    let _ = std::fs::remove_file(&answer);
    postern_queue::safefs::replace_file(&trigger.with_extension("tmp"), &trigger, day.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", trigger.display()))?;
    let start = std::time::Instant::now();
    while start.elapsed() < wait {
        // Never through a link or a FIFO planted there: this may run as root.
        if let Ok(text) = postern_queue::safefs::read_regular(&answer, 1 << 20)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
        {
            let _ = std::fs::remove_file(&answer);
            return Ok(text);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&trigger);
    Err(format!(
        "the daemon did not answer within {}s: is it running with this configuration ({})?",
        wait.as_secs(),
        state_dir.display()
    ))
}

/// `postern tls-report`
#[derive(Debug, clap::Args)]
pub struct TlsReportArgs {
    /// How far back to look: 7d, 24h, 30m.
    #[arg(long, default_value = "7d")]
    pub since: String,
    /// JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `postern tls-report`.
pub fn tls_report(
    state_dir: &Path,
    profile: postern_tls::Profile,
    args: &TlsReportArgs,
) -> ExitCode {
    let secs = match crate::peers::parse_since(&args.since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("postern: --since {e}");
            return ExitCode::from(2);
        }
    };
    let now = postern_queue::unix_now();
    let events = match read(&events_dir(state_dir), now.saturating_sub(secs), now + 1) {
        Ok(r) => r.events,
        Err(e) => {
            eprintln!("postern: cannot read the report store: {e}");
            return ExitCode::FAILURE;
        }
    };
    let peers = crate::peers::peers(&events, profile);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&peers).unwrap_or_default()
        );
    } else {
        print!("{}", crate::peers::text(&peers, &args.since));
    }
    ExitCode::SUCCESS
}
