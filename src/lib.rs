//! Postern, a mail transfer agent: the wiring of the workspace crates into one daemon.
//!
//! This crate owns no protocol logic. It loads the configuration (each section belongs to
//! the crate that uses it), builds the TLS store, opens the queue, starts the listeners,
//! and handles signals. See `docs/message-flow.md` for the path a message takes.

pub mod auth_cli;
pub mod config;
pub mod logging;
pub mod metrics;
pub mod operations;
pub mod sendmail;
pub mod server;

pub use config::{Config, Loaded};
pub use operations::queue_admin;
pub use server::{Running, StartError, start};
