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
use http_body_util::{BodyExt, Empty, Limited};
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
        let addrs = self
            .dns
            .addresses(&host)
            .await
            .map_err(|e| FetchError::Resolve {
                host: host.clone(),
                why: e.to_string(),
            })?
            .records;
        let mut last = String::from("no addresses");
        let mut tcp = None;
        for ip in addrs {
            let addr = std::net::SocketAddr::new(ip, self.port);
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
        // mta-sts.<domain> in the certificate (RFC 8461 §3.3).
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
        let http_err = |why: String| FetchError::Http {
            host: host.clone(),
            why,
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| http_err(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let authority = if self.port == 443 {
            host.clone()
        } else {
            format!("{host}:{}", self.port)
        };
        let req = hyper::Request::get(PATH)
            .header(HOST, authority)
            .header(USER_AGENT, concat!("postern/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
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
                    location: resp
                        .headers()
                        .get(LOCATION)
                        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned()),
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
}

/// `text/plain`, any case, parameters allowed (`text/plain; charset=utf-8`).
pub fn is_text_plain(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/plain"))
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
