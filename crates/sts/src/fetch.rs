//! Fetching `https://mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.3).
//!
//! The name is resolved with Postern's own resolver ([`postern_dns::Resolver`]); the TLS
//! session is Postern's (tokio-rustls, `postern_tls`'s certificate verifier with the trust
//! anchors of outbound `verify`, the name `mta-sts.<domain>` as SNI and as the name the
//! certificate must carry); HTTP/1.1 runs over it with a hyper 1 client connection.
//! No redirects (a 3xx is a failure, §3.3), only `200` with `Content-Type: text/plain`
//! (parameters allowed), at most [`MAX_BODY`] bytes, within [`CONNECT_TIMEOUT`] per
//! address and [`FETCH_TIMEOUT`] overall. See docs/mta-sts.md for why this client.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use postern_dns::Resolver;
use postern_tls::client::{Expect, PeerVerifier};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;

use crate::policy::{Policy, PolicyError};

/// Largest policy body accepted (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_BODY: usize = 64 * 1024;
/// Deadline for one TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline for the whole fetch: resolution, connections, TLS, request and body.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The well-known path (RFC 8461 §3.3).
pub const PATH: &str = "/.well-known/mta-sts.txt";

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("cannot resolve {host}: {why}")]
    Resolve { host: String, why: String },
    #[error("cannot connect to {host}: {why}")]
    Connect { host: String, why: String },
    #[error("TLS with {host} failed: {why}")]
    Tls { host: String, why: String },
    #[error("HTTP exchange with {host} failed: {why}")]
    Http { host: String, why: String },
    #[error("{url}: redirect ({status}{}) refused: RFC 8461 §3.3 forbids following redirects", .location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default())]
    Redirect {
        url: String,
        status: u16,
        location: Option<String>,
    },
    #[error("{url}: HTTP status {status}, not 200")]
    Status { url: String, status: u16 },
    #[error("{url}: Content-Type {content_type:?}, not text/plain")]
    ContentType { url: String, content_type: String },
    #[error("{url}: body larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("{url}: did not complete within {}s", FETCH_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("{url}: invalid policy: {error}")]
    Policy { url: String, error: PolicyError },
    #[error("{url}: not an https: URL with a host name (https://HOST[:PORT]/PATH)")]
    BadUrl { url: String },
    #[error("{url}: HTTP status {status}, not 2xx")]
    Rejected { url: String, status: u16 },
    #[error("{url}: redirect ({status}{}) not followed: a report goes only to the URL the record names", .location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default())]
    PostRedirect {
        url: String,
        status: u16,
        location: Option<String>,
    },
}

/// Fetches policies over HTTPS.
#[derive(Debug, Clone)]
pub struct Fetcher {
    dns: Resolver,
    /// `[outbound] mta_sts_port` (443 outside tests).
    port: u16,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

/// `https://mta-sts.<domain>/.well-known/mta-sts.txt` (with the port when not 443).
pub fn policy_url(domain: &str, port: u16) -> String {
    let host = policy_host(domain);
    if port == 443 {
        format!("https://{host}{PATH}")
    } else {
        format!("https://{host}:{port}{PATH}")
    }
}

/// `mta-sts.<domain>`, lower case, without a trailing dot.
pub fn policy_host(domain: &str) -> String {
    format!(
        "mta-sts.{}",
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

impl Fetcher {
    pub fn new(dns: Resolver, port: u16) -> Fetcher {
        Fetcher {
            dns,
            port,
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        }
    }

    /// Fetch and parse `domain`'s policy; the certificate must chain to `roots`.
    pub async fn fetch(
        &self,
        domain: &str,
        roots: Arc<RootCertStore>,
    ) -> Result<Policy, FetchError> {
        let url = policy_url(domain, self.port);
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch_inner(domain, roots, &url)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout { url }),
        }
    }

    async fn fetch_inner(
        &self,
        domain: &str,
        roots: Arc<RootCertStore>,
        url: &str,
    ) -> Result<Policy, FetchError> {
        let host = policy_host(domain);
        let (mut sender, driver) = self.open(&host, self.port, roots).await?;
        let http_err = |why: String| FetchError::Http {
            host: host.clone(),
            why,
        };
        let authority = if self.port == 443 {
            host.clone()
        } else {
            format!("{host}:{}", self.port)
        };
        let req = hyper::Request::get(PATH)
            .header(HOST, authority)
            .header(USER_AGENT, concat!("postern/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::new()))
            .map_err(|e| http_err(e.to_string()))?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| http_err(e.to_string()))?;
            let status = resp.status();
            if status.is_redirection() {
                return Err(FetchError::Redirect {
                    url: url.to_string(),
                    status: status.as_u16(),
                    location: location(resp.headers()),
                });
            }
            if status != hyper::StatusCode::OK {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status: status.as_u16(),
                });
            }
            let ct = resp
                .headers()
                .get(CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            if !is_text_plain(&ct) {
                return Err(FetchError::ContentType {
                    url: url.to_string(),
                    content_type: ct,
                });
            }
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge {
                            url: url.to_string(),
                        }
                    } else {
                        http_err(e.to_string())
                    }
                })?
                .to_bytes();
            Policy::parse(&body).map_err(|error| FetchError::Policy {
                url: url.to_string(),
                error,
            })
        }
        .await;
        driver.abort();
        result
    }

    /// Resolve `host` with our resolver, connect to `port`, TLS with the certificate
    /// verified for `host` against `roots`, HTTP/1.1 over it. The connection's driver
    /// task is returned so that the caller can end it.
    async fn open(
        &self,
        host: &str,
        port: u16,
        roots: Arc<RootCertStore>,
    ) -> Result<(Sender, tokio::task::JoinHandle<()>), FetchError> {
        let host = host.to_string();
        let addrs = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                self.dns
                    .addresses(&host)
                    .await
                    .map_err(|e| FetchError::Resolve {
                        host: host.clone(),
                        why: e.to_string(),
                    })?
                    .records
            }
        };
        let mut last = String::from("no addresses");
        let mut tcp = None;
        for ip in addrs {
            let addr = std::net::SocketAddr::new(ip, port);
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => last = format!("{addr}: timed out after {}s", CONNECT_TIMEOUT.as_secs()),
            }
        }
        let tcp = tcp.ok_or(FetchError::Connect {
            host: host.clone(),
            why: last,
        })?;
        let tls_err = |why: String| FetchError::Tls {
            host: host.clone(),
            why,
        };
        // The same verifier as outbound `verify`: chain to the trust anchors, name
        // `host` in the certificate (for a policy, mta-sts.<domain>: RFC 8461 §3.3).
        let verifier = Arc::new(PeerVerifier::new(
            roots,
            self.provider.clone(),
            Expect::Names(vec![host.clone()]),
            &host,
        ));
        let config =
            postern_tls::client::client_config(self.provider.clone(), verifier.clone(), None)
                .map_err(|e| tls_err(e.to_string()))?;
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(host.clone()).map_err(|e| tls_err(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| {
                tls_err(match verifier.outcome() {
                    Some(Err(reason)) => reason.to_string(),
                    _ => e.to_string(),
                })
            })?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| FetchError::Http {
                    host: host.clone(),
                    why: e.to_string(),
                })?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((sender, driver))
    }

    /// POST `body` to the `https:` URL `url` (a TLS-RPT `rua=https:` destination, RFC
    /// 8460 §3): the certificate must chain to `roots` and name the URL's host; no
    /// redirects; success is any 2xx status, which is returned. Within
    /// [`FETCH_TIMEOUT`].
    pub async fn post(
        &self,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
        roots: Arc<RootCertStore>,
    ) -> Result<u16, FetchError> {
        let u = HttpsUrl::parse(url).ok_or_else(|| FetchError::BadUrl {
            url: url.to_string(),
        })?;
        let attempt = async {
            let (mut sender, driver) = self.open(&u.host, u.port, roots).await?;
            let http_err = |why: String| FetchError::Http {
                host: u.host.clone(),
                why,
            };
            let req = hyper::Request::post(u.path.as_str())
                .header(HOST, u.authority())
                .header(USER_AGENT, concat!("postern/", env!("CARGO_PKG_VERSION")))
                .header(CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| http_err(e.to_string()));
            let result = async {
                let resp = sender
                    .send_request(req?)
                    .await
                    .map_err(|e| http_err(e.to_string()))?;
                let status = resp.status();
                if status.is_redirection() {
                    return Err(FetchError::PostRedirect {
                        url: url.to_string(),
                        status: status.as_u16(),
                        location: location(resp.headers()),
                    });
                }
                if !status.is_success() {
                    return Err(FetchError::Rejected {
                        url: url.to_string(),
                        status: status.as_u16(),
                    });
                }
                Ok(status.as_u16())
            }
            .await;
            driver.abort();
            result
        };
        match tokio::time::timeout(FETCH_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout {
                url: url.to_string(),
            }),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An `https:` URL, split for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsUrl {
    /// Lower case, without a trailing dot (or an IP address).
    pub host: String,
    pub port: u16,
    /// The path and query, `/` when empty.
    pub path: String,
}

impl HttpsUrl {
    /// `https://HOST[:PORT][/PATH][?QUERY]`; `None` for another scheme, user
    /// information, a fragment, spaces or control characters, a missing host, or an IP
    /// address instead of a host name (the certificate is checked for a name).
    pub fn parse(url: &str) -> Option<HttpsUrl> {
        if url.len() > 2048 || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return None;
        }
        let rest = url
            .get(..8)
            .filter(|s| s.eq_ignore_ascii_case("https://"))
            .map(|_| &url[8..])?;
        if rest.contains(['#', '@', '\\']) {
            return None;
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'?' => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']')?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':')?)),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0)?,
            None => 443,
        };
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        // A host name, never an address: the certificate is checked for a DNS name.
        let ok = !host.is_empty()
            && host.parse::<std::net::IpAddr>().is_err()
            && host.contains(|c: char| c.is_ascii_alphabetic())
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        ok.then_some(HttpsUrl { host, port, path })
    }

    /// `host[:port]` for the `Host` field.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 443 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// `text/plain`, any case, parameters allowed (`text/plain; charset=utf-8`).
pub fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
}

/// A redirect's `Location`, for the error that refuses to follow it.
fn location(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get(LOCATION)
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_text_plain("text/plain"));
        assert!(is_text_plain("Text/Plain; charset=utf-8"));
        assert!(!is_text_plain("text/html"));
        assert!(!is_text_plain("text/plainx"));
        assert!(!is_text_plain(""));
    }

    #[test]
    fn https_urls() {
        let u = HttpsUrl::parse("HTTPS://Reports.Example.ORG./tlsrpt?x=1").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("reports.example.org", 443, "/tlsrpt?x=1")
        );
        assert_eq!(u.authority(), "reports.example.org");
        let u = HttpsUrl::parse("https://rpt.test:8443").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.authority().as_str()),
            (8443, "/", "rpt.test:8443")
        );
        assert_eq!(HttpsUrl::parse("https://h.test?q").unwrap().path, "/?q");
        for bad in [
            "http://rpt.test/",
            "https://",
            "https://user@rpt.test/",
            "https://rpt.test:0/",
            "https://rpt.test:99999/",
            "https://rpt.test/a b",
            "https://rpt.test/#frag",
            "https://rpt_test/",
            "https://rpt.test/\r\n",
            "mailto:a@b.test",
            "https://[::1]:8443/r",
            "https://[::1]/r",
            "https://192.0.2.1/r",
            "https://[2001:db8::1]/r",
        ] {
            assert!(HttpsUrl::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            policy_url("Example.ORG.", 443),
            "https://mta-sts.example.org/.well-known/mta-sts.txt"
        );
        assert_eq!(
            policy_url("example.org", 8443),
            "https://mta-sts.example.org:8443/.well-known/mta-sts.txt"
        );
    }
}
