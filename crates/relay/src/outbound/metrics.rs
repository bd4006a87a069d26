//! What outbound delivery counts (see `postern-metrics` for the names and help texts).

use postern_queue::Outcome;

use super::client::Client;

/// Recipients handed to a remote server on `c`, by outcome and the TLS level achieved
/// (`Verified`, `Trusted`, `Untrusted`, or `plaintext`; Postfix's `Anonymous` cannot occur:
/// no anonymous cipher suite is ever offered).
pub(crate) fn delivered(c: &Client, outcomes: &[Outcome]) {
    let tls = c
        .tls
        .as_ref()
        .map(|(trust, _)| trust.as_str())
        .unwrap_or("plaintext");
    for o in outcomes {
        let outcome = match o {
            Outcome::Delivered(_) | Outcome::Relayed(_) | Outcome::RelayedWithoutDsn(_) => {
                "delivered"
            }
            Outcome::Temporary(_) => "deferred",
            Outcome::Permanent(_) => "failed",
        };
        postern_metrics::inc(
            "postern_outbound_deliveries_total",
            &[("outcome", outcome), ("tls", tls)],
        );
    }
}

/// A connection was abandoned because the TLS policy for `domain` could not be met.
pub(crate) fn policy_failure(domain: &str, level: &str) {
    postern_metrics::inc(
        "postern_outbound_tls_policy_failures_total",
        &[("domain", domain), ("level", level)],
    );
}

/// A DANE outcome for one MX host: `verified`, `mismatch`, `no-tlsa` (no secure TLSA, or
/// an insecure MX/host: `may`), `unusable` (secure TLSA, none usable: `encrypt`, or
/// skipped under `dane-only`), `bogus` (bogus or failed DNS: host skipped).
pub(crate) fn dane(result: &str) {
    postern_metrics::inc("postern_outbound_dane_total", &[("result", result)]);
}

/// An MTA-STS outcome for one MX host (RFC 8461): `enforce-verified` delivered under an
/// enforce policy; `enforce-mx-mismatch` host skipped (matches no `mx` pattern);
/// `enforce-tls-failed` no STARTTLS or certificate not verified (host deferred);
/// `testing-ok`; `testing-mx-mismatch` and `testing-tls-failed` what enforce would have
/// refused, delivered anyway (testing mode).
pub(crate) fn mta_sts(result: &str) {
    postern_metrics::inc("postern_outbound_mta_sts_total", &[("result", result)]);
}
