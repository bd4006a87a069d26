//! `postern policy explain DOMAIN`: what happens to mail for a domain, before it matters.

use std::fmt::Write as _;

use postern_relay::NextHop;
use postern_relay::outbound::dns::{Dns, DnsFailure, MxAnswer};
use postern_relay::outbound::policy::Policies;
use postern_smtp::address::{Domain, parse_domain};

use crate::Config;

/// The explanation, as printed. With `resolve`, DNS is asked for the hosts it would try.
pub async fn explain(config: &Config, domain: &str, resolve: bool) -> Result<String, String> {
    let domain = parse_domain(domain.trim_end_matches('.'))
        .map_err(|e| format!("{domain:?} is not a domain name: {e}"))?;
    let mut out = String::new();
    let _ = writeln!(out, "destination: {domain}");
    let local = config
        .relay
        .local_domains
        .iter()
        .any(|d| d.eq_ignore_ascii_case(&domain));
    let _ = writeln!(
        out,
        "accepted from: {}",
        if local {
            "anyone (a local domain)"
        } else {
            "trusted networks only (relay)"
        }
    );
    let router = config.static_router();
    let hop = router.explicit(&Domain::Name(domain.clone())).cloned();
    let (hop, how) = match hop {
        Some(h) => (h, "from [[route]]"),
        None => (
            NextHop::Smtp(postern_relay::outbound::agent::SmtpHop {
                host: domain.clone(),
                port: None,
                mx: true,
            }),
            "no [[route]] matches: MX lookup",
        ),
    };
    let _ = writeln!(out, "next hop:   {hop} ({how})");
    let NextHop::Smtp(smtp) = &hop else {
        let _ = writeln!(out, "delivery:   local Maildir; no TLS policy applies");
        return Ok(out);
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let mut problems = postern_config::Problems::new();
    let policies = Policies::load(&config.outbound, &provider, &mut problems);
    let nexthop = smtp.host.clone();
    out.push_str(&policies.lookup(&domain).describe(&nexthop));
    let _ = writeln!(
        out,
        "port:       {}",
        smtp.port.unwrap_or(config.outbound.port)
    );
    if resolve {
        let dns = Dns::new(&config.resolver)?;
        let names: Vec<(u16, String)> = if smtp.mx {
            match dns.mx(&smtp.host).await {
                Ok(MxAnswer::Hosts(h)) => h,
                Ok(MxAnswer::NoMx) => {
                    let _ = writeln!(
                        out,
                        "MX:         none; the domain's own address is used (implicit MX)"
                    );
                    vec![(0, smtp.host.clone())]
                }
                Ok(MxAnswer::NullMx) => {
                    let _ = writeln!(
                        out,
                        "MX:         null MX (RFC 7505): mail would bounce with 556 5.1.10"
                    );
                    return Ok(out);
                }
                Err(DnsFailure::NotFound) => {
                    let _ = writeln!(
                        out,
                        "MX:         the domain does not exist (NXDOMAIN): mail would bounce"
                    );
                    return Ok(out);
                }
                Err(DnsFailure::NoRecords) => vec![(0, smtp.host.clone())],
                Err(DnsFailure::Temporary(e)) => {
                    let _ = writeln!(
                        out,
                        "MX:         lookup failed ({e}): mail would wait and be retried"
                    );
                    return Ok(out);
                }
            }
        } else {
            vec![(0, smtp.host.clone())]
        };
        let _ = writeln!(out, "hosts, in the order they would be tried:");
        for (pref, name) in names {
            let addrs = match dns.addresses(&name).await {
                Ok(a) => a
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("no address ({e:?})"),
            };
            let _ = writeln!(out, "  {pref:>5} {name} -> {addrs}");
        }
    }
    Ok(out)
}
