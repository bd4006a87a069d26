//! Reports: one durable store of TLS session outcomes and DMARC evaluations, the daily
//! TLS-RPT (RFC 8460) and DMARC aggregate reports built from it, inbound reports turned
//! into metrics, and `postern tls-report`.
