//! What the policy listeners answer, as plain functions of the request (no I/O).
//!
//! HTTPS: `GET`/`HEAD /.well-known/mta-sts.txt` with `Host: mta-sts.DOMAIN` of a configured
//! policy is `200 text/plain` and the policy; any other host or path is `404`; any other
//! method `405` with `Allow: GET, HEAD`. Every HTTPS answer carries
//! `Strict-Transport-Security`. Plain HTTP: `301` to the same URL over HTTPS for a
//! configured host, `404` otherwise, `405` for other methods; no HSTS (RFC 6797 §7.2
//! forbids it over plain HTTP).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::policy::Policies;

/// Where senders fetch the policy (RFC 8461 §3.3).
pub const WELL_KNOWN: &str = "/.well-known/mta-sts.txt";

/// `Strict-Transport-Security` on every HTTPS answer: one year.
pub const HSTS: &str = "max-age=31536000";

/// An answer's body.
pub type Body = Full<Bytes>;

/// The parts of a request the answer depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub method: Method,
    /// `Host:` (or the authority of an absolute-form target), when given.
    pub host: Option<String>,
    /// The path and query, as received.
    pub target: String,
    pub path: String,
}

impl Asked {
    pub fn of<B>(req: &Request<B>) -> Asked {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
        Asked {
            method: req.method().clone(),
            host,
            target: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".to_string()),
            path: req.uri().path().to_string(),
        }
    }

    /// The request for the log: method, host and target, quoted and cut short (they
    /// come from the internet).
    pub fn describe(&self) -> String {
        let cut = |s: &str| -> String { s.chars().take(120).collect() };
        format!(
            "{} {:?} {:?}",
            self.method,
            cut(self.host.as_deref().unwrap_or("")),
            cut(&self.target)
        )
    }

    fn get_or_head(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn not_allowed() -> Response<Body> {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

/// The HTTPS listener's answer.
pub fn answer_https(policies: &Policies, asked: &Asked) -> Response<Body> {
    let mut r = if !asked.get_or_head() {
        not_allowed()
    } else {
        match asked.host.as_deref().and_then(|h| policies.for_host(h)) {
            Some(p) if asked.path == WELL_KNOWN => {
                let mut r = Response::new(Full::new(p.text.clone()));
                // RFC 8461 §3.3: the media type is text/plain.
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                r
            }
            _ => not_found(),
        }
    };
    r.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    r.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// The plain HTTP listener's answer: only ever a redirect to HTTPS.
pub fn answer_http(policies: &Policies, asked: &Asked) -> Response<Body> {
    if !asked.get_or_head() {
        return not_allowed();
    }
    let Some(p) = asked.host.as_deref().and_then(|h| policies.for_host(h)) else {
        return not_found();
    };
    let location = format!("https://{}{}", p.host, asked.target);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut r = text(StatusCode::MOVED_PERMANENTLY, "moved to https\n");
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Mode, MtaStsConfig, PolicyConfig};

    fn policies() -> Policies {
        Policies::new(&MtaStsConfig {
            policy: vec![PolicyConfig {
                domain: "example.org".into(),
                mode: Mode::Enforce,
                mx: vec!["mx.example.org".into()],
                max_age: 86400,
            }],
            ..Default::default()
        })
    }

    fn ask(method: Method, host: Option<&str>, target: &str) -> Asked {
        let mut b = Request::builder().method(method).uri(target);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        Asked::of(&b.body(()).unwrap())
    }

    fn h(r: &Response<Body>, name: header::HeaderName) -> Option<&str> {
        r.headers().get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn the_policy_is_served_at_the_well_known_path() {
        let p = policies();
        for m in [Method::GET, Method::HEAD] {
            let r = answer_https(&p, &ask(m, Some("MTA-STS.example.org:443"), WELL_KNOWN));
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(h(&r, header::CONTENT_TYPE), Some("text/plain"));
            assert_eq!(h(&r, header::STRICT_TRANSPORT_SECURITY), Some(HSTS));
        }
        // Absolute-form target, no Host header.
        let r = answer_https(
            &p,
            &ask(
                Method::GET,
                None,
                "https://mta-sts.example.org/.well-known/mta-sts.txt",
            ),
        );
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[test]
    fn elsewhere_is_404_and_other_methods_405_all_with_hsts() {
        let p = policies();
        for (a, status) in [
            (
                ask(Method::GET, Some("mta-sts.other.test"), WELL_KNOWN),
                404,
            ),
            (ask(Method::GET, None, WELL_KNOWN), 404),
            (ask(Method::GET, Some("mta-sts.example.org"), "/"), 404),
            (
                ask(Method::GET, Some("mta-sts.example.org"), "/.well-known/x"),
                404,
            ),
            (
                ask(Method::POST, Some("mta-sts.example.org"), WELL_KNOWN),
                405,
            ),
            (ask(Method::PUT, Some("x"), "/"), 405),
        ] {
            let r = answer_https(&p, &a);
            assert_eq!(r.status().as_u16(), status, "{a:?}");
            assert_eq!(h(&r, header::STRICT_TRANSPORT_SECURITY), Some(HSTS));
            if status == 405 {
                assert_eq!(h(&r, header::ALLOW), Some("GET, HEAD"));
            }
        }
    }

    #[test]
    fn plain_http_only_redirects() {
        let p = policies();
        let r = answer_http(
            &p,
            &ask(Method::GET, Some("mta-sts.example.org:80"), "/x?y=1"),
        );
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            h(&r, header::LOCATION),
            Some("https://mta-sts.example.org/x?y=1")
        );
        assert!(r.headers().get(header::STRICT_TRANSPORT_SECURITY).is_none());
        let r = answer_http(&p, &ask(Method::GET, Some("evil.test"), WELL_KNOWN));
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = answer_http(&p, &ask(Method::DELETE, Some("mta-sts.example.org"), "/"));
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn requests_are_logged_quoted_and_short() {
        let a = ask(
            Method::GET,
            Some("mta-sts.example.org"),
            &format!("/{}", "a".repeat(500)),
        );
        let d = a.describe();
        assert!(d.starts_with("GET \"mta-sts.example.org\" \"/aaa"), "{d}");
        assert!(d.len() < 160, "{d}");
    }
}
