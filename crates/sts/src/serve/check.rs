//! What `postern check-config` and `postern dns-records` say about the served policies.

use std::fmt::Write as _;
use std::net::IpAddr;

use postern_config::server::ServerConfig;
use postern_tls::TlsConfig;
use postern_tls::x509::CertInfo;

use super::policy::ServedPolicy;
use crate::config::MtaStsConfig;

/// The `check-config` lines: the listeners, each policy with its id, and a warning for
/// each policy host no served certificate names (senders verify it, RFC 8461 §3.3).
/// Nothing when `[mta_sts]` is not used. `server`: its host name names the self-signed
/// certificate generated when `[tls]` has none.
pub fn summary(c: &MtaStsConfig, tls: &TlsConfig, server: &ServerConfig) -> String {
    let hostname = &server.hostname();
    let mut s = String::new();
    if c.policy.is_empty() && c.listen.is_empty() {
        return s;
    }
    if !c.enabled() {
        let _ = writeln!(
            s,
            "  mta_sts:   off (listen is empty): {} configured polic{} not served",
            c.policy.len(),
            if c.policy.len() == 1 {
                "y is"
            } else {
                "ies are"
            }
        );
        return s;
    }
    let list = |v: &[std::net::SocketAddr]| {
        v.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(s, "  mta_sts:   https on {}", list(&c.listen));
    if !c.http_listen.is_empty() {
        let _ = write!(s, ", http (redirects only) on {}", list(&c.http_listen));
    }
    s.push('\n');
    let names = served_names(tls, hostname);
    for pc in &c.policy {
        let p = ServedPolicy::new(pc);
        let _ = writeln!(
            s,
            "    {}: mode {}, mx {}, max_age {}, id {}",
            p.host,
            pc.mode,
            if pc.mx.is_empty() {
                "(none)".to_string()
            } else {
                pc.normalized_mx().join(" ")
            },
            pc.max_age,
            p.id
        );
        if let Err(why) = &names {
            let _ = writeln!(
                s,
                "  warning: cannot tell whether a certificate names {}: {why}",
                p.host
            );
        } else if !names
            .iter()
            .flatten()
            .any(|n| postern_tls::client::name_matches(n, &p.host))
        {
            let _ = writeln!(
                s,
                "  warning: no served certificate names {}: senders verify the policy host's certificate and will ignore the policy; add the name to a [[tls.certificate]] (a certificate of its own is chosen by SNI)",
                p.host
            );
        }
    }
    s
}

/// The DNS names (lower case) of every certificate `[tls]` serves; with none configured,
/// the generated self-signed one, which names only `hostname`.
fn served_names(tls: &TlsConfig, hostname: &str) -> Result<Vec<String>, String> {
    if tls.certificate.is_empty() {
        return Ok(vec![hostname.to_ascii_lowercase()]);
    }
    let mut names = Vec::new();
    for c in &tls.certificate {
        let chain = postern_tls::read_chain(&c.chain).map_err(|e| e.to_string())?;
        let info =
            CertInfo::parse(&chain[0]).map_err(|e| format!("{}: {e:?}", c.chain.display()))?;
        names.extend(info.sans.iter().map(|n| n.to_ascii_lowercase()));
        if info.sans.is_empty() {
            names.extend(info.common_name.map(|n| n.to_ascii_lowercase()));
        }
    }
    Ok(names)
}

/// `postern dns-records`: per policy domain, the `mta-sts.DOMAIN` host record and the
/// `_mta-sts` TXT record with the id of the text served, with comments. The host record
/// is A/AAAA when `listen` names specific public addresses, else a CNAME to `hostname`.
pub fn dns_records(c: &MtaStsConfig, hostname: &str) -> Vec<(String, String)> {
    let host = hostname.trim_end_matches('.');
    let ips: Vec<IpAddr> = c
        .listen
        .iter()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback())
        .collect();
    c.policy
        .iter()
        .map(|pc| {
            let p = ServedPolicy::new(pc);
            let mut s = String::new();
            let _ = writeln!(
                s,
                "; MTA-STS (RFC 8461): policy (mode {}, max_age {}) served at\n\
                 ; https://{}/.well-known/mta-sts.txt by this server's [mta_sts] listener{}.\n\
                 ; The id follows the policy text: after any change, publish the new record.",
                pc.mode,
                pc.max_age,
                p.host,
                if c.enabled() {
                    ""
                } else {
                    " (off: set mta_sts.listen before publishing)"
                }
            );
            if ips.is_empty() {
                let _ = writeln!(s, "{}. IN CNAME {host}.", p.host);
            }
            for ip in &ips {
                let rr = if ip.is_ipv4() { "A" } else { "AAAA" };
                let _ = writeln!(s, "{}. IN {rr} {ip}", p.host);
            }
            let _ = writeln!(s, "{}", p.txt_record());
            (p.domain, s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mode, PolicyConfig};

    fn server(h: &str) -> ServerConfig {
        ServerConfig {
            hostname: Some(h.into()),
            ..Default::default()
        }
    }

    fn cfg(listen: &[&str]) -> MtaStsConfig {
        MtaStsConfig {
            listen: listen.iter().map(|a| a.parse().unwrap()).collect(),
            http_listen: vec![],
            policy: vec![PolicyConfig {
                domain: "example.org".into(),
                mode: Mode::Enforce,
                mx: vec!["mx.example.org".into()],
                max_age: 86400,
            }],
        }
    }

    #[test]
    fn records_carry_the_served_id() {
        let c = cfg(&["0.0.0.0:443"]);
        let id = ServedPolicy::new(&c.policy[0]).id;
        let r = dns_records(&c, "mx.example.org");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "example.org");
        assert!(
            r[0].1.contains(&format!(
                "_mta-sts.example.org. IN TXT \"v=STSv1; id={id}\""
            )),
            "{}",
            r[0].1
        );
        assert!(
            r[0].1
                .contains("mta-sts.example.org. IN CNAME mx.example.org.")
        );
        let r = dns_records(
            &cfg(&["192.0.2.1:443", "[2001:db8::1]:443"]),
            "mx.example.org",
        );
        assert!(
            r[0].1.contains("mta-sts.example.org. IN A 192.0.2.1\n"),
            "{}",
            r[0].1
        );
        assert!(
            r[0].1
                .contains("mta-sts.example.org. IN AAAA 2001:db8::1\n")
        );
        assert!(!r[0].1.contains("CNAME"));
    }

    #[test]
    fn summary_warns_about_a_missing_certificate_name() {
        let c = cfg(&["0.0.0.0:443"]);
        let s = summary(&c, &TlsConfig::default(), &server("mx.example.org"));
        assert!(s.contains("https on 0.0.0.0:443"), "{s}");
        assert!(
            s.contains("mta-sts.example.org: mode enforce, mx mx.example.org"),
            "{s}"
        );
        assert!(
            s.contains("warning: no served certificate names mta-sts.example.org"),
            "{s}"
        );
        // The self-signed certificate names the host name only.
        let s = summary(&c, &TlsConfig::default(), &server("mta-sts.example.org"));
        assert!(!s.contains("warning"), "{s}");
        assert_eq!(
            summary(
                &MtaStsConfig::default(),
                &TlsConfig::default(),
                &server("h")
            ),
            ""
        );
    }
}
