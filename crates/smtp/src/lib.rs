//! The SMTP protocol without I/O: parsers take bytes and return values.
//!
//! - [`command`]: the command grammar of RFC 5321 §4.1 with ESMTP parameters.
//! - [`address`]: paths and mailboxes (RFC 5321 §4.1.2, RFC 6531 for SMTPUTF8).
//! - [`reply`]: replies with enhanced status codes (RFC 3463) and their wire form.
//! - [`data`]: the DATA reader (dot-unstuffing, strict `CRLF.CRLF`, size and line limits).
//! - [`bdat`]: the BDAT (CHUNKING, RFC 3030) content checker.
//! - [`header_scan`]: header-field, hop and size counts of arriving content.
//! - [`client`]: the client side: a bounded reply parser and EHLO capabilities.
//! - [`enhanced`]: enhanced status codes (RFC 3463) as a type.
//!
//! # Security
//! Everything here is reachable by any network peer. No function panics on any input, no
//! allocation grows with input beyond the limits the caller sets, and end-of-data is
//! recognised only as `CRLF.CRLF`: a bare LF or bare CR anywhere in message content is an
//! error, never a line break (CVE-2023-51764 "SMTP smuggling" class).
//!
//! # Standards
//! RFC 5321 (SMTP), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8), RFC 2920
//! (PIPELINING), RFC 3030 (CHUNKING), RFC 3207 (STARTTLS), RFC 3463 / RFC 5248 (enhanced
//! status codes).

pub mod address;
pub mod bdat;
pub mod client;
pub mod command;
pub mod data;
pub mod dsn;
pub mod encode;
pub mod enhanced;
pub mod header_scan;
pub mod reply;

pub use address::{Address, Domain, ForwardPath, ReversePath};
pub use bdat::BdatReader;
pub use command::{BodyType, Command, CommandError, MailParams, RcptParams};
pub use data::{ContentError, DataReader, Feed};
pub use encode::DataEncoder;
pub use enhanced::EnhancedCode;
pub use header_scan::{HeaderError, HeaderLimits, HeaderScan};
pub use reply::Reply;

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
pub const MAX_TEXT_LINE: usize = 1000;
