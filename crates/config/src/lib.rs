//! Configuration building blocks shared by every Postern crate.
//!
//! Each crate owns its own section of `postern.toml` as a serde struct with
//! `deny_unknown_fields`; this crate provides the value types those sections share
//! ([`Size`], [`Duration`], [`Cidr`]), the [`Problems`] collector that semantic checks
//! report into, and [`locate`], which turns a key path such as `listener[1].address`
//! back into a `line:column` in the operator's file so every error can name where it is.
//!
//! # Security
//! Nothing here touches the network or the file system; parsing is total (no panics on
//! any input), which the config fuzz target relies on.

pub mod cli;
mod diag;
pub mod domain;
pub mod server;
mod values;

pub use diag::{ConfigError, KeyPath, Problems, locate, parse_toml};
pub use domain::{
    DomainError, comparable, normalize_domain, normalize_pattern, normalize_received,
};
pub use values::{Cidr, Duration, InvalidValue, Size};
