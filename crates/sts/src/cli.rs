//! `postern mta-sts show|refresh|forget DOMAIN [--json]`: the cache of policies used when
//! sending. The commands work on the files under `<state_dir>/mta-sts/`; a running
//! daemon checks a domain's file on every use, so a `forget` or `refresh` here takes
//! effect there at once (see [`crate::cache`]).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::cache::{Cache, Entry, now};
use crate::lookup::{Sts, age};

#[derive(Debug, clap::Subcommand)]
pub enum MtaStsCommand {
    /// Print the cached policy for DOMAIN: mode, mx patterns, max_age, id, source and age.
    /// Exit status 1 when none is cached.
    Show(Args),
    /// Look up _mta-sts.DOMAIN and fetch the policy now, over HTTPS; store it in the cache.
    Refresh(Args),
    /// Delete the cached policy for DOMAIN (the daemon stops using it at once; the next
    /// delivery looks the policy up again).
    Forget(Args),
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The recipient domain, e.g. example.org
    pub domain: String,
    /// Machine-readable output (JSON).
    #[arg(long)]
    pub json: bool,
}

/// What the commands need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub state_dir: &'a Path,
    pub resolver: &'a postern_dns::ResolverConfig,
    /// `[outbound] ca` (`None`: the system store).
    pub ca: Option<&'a Path>,
    /// `[outbound] mta_sts_port`.
    pub port: u16,
}

/// The entry as JSON, with its expiry.
pub fn json(e: &Entry, now: u64) -> String {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("cached".into(), true.into());
        o.insert("expires".into(), e.expires().into());
        o.insert("expired".into(), e.expired(now).into());
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// The entry for people.
pub fn text(e: &Entry, now: u64) -> String {
    format!(
        "domain:   {}\nmode:     {}\nmx:       {}\nmax_age:  {} ({})\nsource:   {}\n",
        e.domain,
        e.policy.mode.as_str(),
        e.policy.mx.join(", "),
        e.policy.max_age,
        crate::lookup::human(e.policy.max_age),
        age(e, now)
    )
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("postern: {msg}");
    ExitCode::from(2)
}

/// Run one command.
pub fn run(cmd: MtaStsCommand, ctx: Context<'_>) -> ExitCode {
    let cache = || Cache::open(ctx.state_dir);
    match cmd {
        MtaStsCommand::Show(a) => {
            let c = match cache() {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match c.get(&a.domain) {
                Some(e) if a.json => println!("{}", json(&e, now())),
                Some(e) => print!("{}", text(&e, now())),
                None => {
                    if a.json {
                        println!(
                            "{}",
                            serde_json::json!({"domain": a.domain, "cached": false})
                        );
                    }
                    eprintln!("no MTA-STS policy cached for {}", a.domain);
                    return ExitCode::FAILURE;
                }
            }
        }
        MtaStsCommand::Forget(a) => {
            let c = match cache() {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match c.forget(&a.domain) {
                Ok(had) if a.json => println!("{{\"domain\":{:?},\"forgotten\":{had}}}", a.domain),
                Ok(true) => println!("MTA-STS policy for {} forgotten", a.domain),
                Ok(false) => println!("no MTA-STS policy was cached for {}", a.domain),
                Err(e) => return fail(e),
            }
        }
        MtaStsCommand::Refresh(a) => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the async runtime: {e}")),
            };
            let roots = match postern_tls::client::load_roots(ctx.ca) {
                Ok(r) => Arc::new(r),
                Err(e) => return fail(format!("[outbound] ca: {e}")),
            };
            let result = rt.block_on(async {
                let dns = postern_dns::Resolver::new(ctx.resolver).map_err(|e| e.to_string())?;
                let sts = Sts::new(
                    dns,
                    ctx.port,
                    ctx.state_dir,
                    Arc::new(move || roots.clone()),
                )
                .map_err(|e| e.to_string())?;
                sts.refresh(&a.domain).await.map_err(|e| e.to_string())
            });
            match result {
                Ok(e) if a.json => {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&json(&e, now())).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("refreshed".into(), true.into());
                    }
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                }
                Ok(e) => print!("{}", text(&e, now())),
                Err(e) => {
                    if a.json {
                        println!(
                            "{}",
                            serde_json::json!({"domain": a.domain, "refreshed": false, "error": e})
                        );
                    }
                    return fail(format!(
                        "MTA-STS policy for {} not refreshed: {e}",
                        a.domain
                    ));
                }
            }
        }
    }
    ExitCode::SUCCESS
}
