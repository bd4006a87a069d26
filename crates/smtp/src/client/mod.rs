//! The client side of the codec: what an SMTP client reads from a server.
//!
//! - [`ReplyParser`]: bounded, incremental parsing of (multi-line) replies into [`Reply`]
//!   values with their [`EnhancedCode`], or a typed [`ReplyError`].
//! - [`Capabilities`]: the extensions and parameters of an EHLO reply.
//!
//! Users: the relay's outbound client, `postern sendmail` (submission) and the
//! `tls-check` scanner. None of them parses replies by hand.
//!
//! # Security
//! Servers may be hostile: see [`reply`] for the limits and the bytes refused, and
//! [`ehlo`] for how capability parameters are bounded. Whether bytes may follow a reply
//! (they must not after `220` to STARTTLS, RFC 3207 §4.2 / CVE-2011-0411 class) is for the
//! caller to check, using [`Feed::consumed`].
//!
//! # Standards
//! RFC 5321 §4.2 (replies), RFC 3463 (enhanced status codes), RFC 5321 §4.1.1.1 (EHLO),
//! and the extensions listed in [`ehlo`].

pub mod ehlo;
pub mod reply;

pub use crate::enhanced::EnhancedCode;
pub use ehlo::{Capabilities, Extension};
pub use reply::{Feed, Limits, Reply, ReplyError, ReplyParser};
