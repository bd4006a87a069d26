//! The control socket and `postern queue ...`: how an operator looks at and acts on the
//! queue, whether the daemon runs or not.
//!
//! - [`protocol`]: the request lines and answers on the socket;
//! - [`server`]: the daemon's side, which hands changes to the scheduler
//!   ([`crate::Queue::admin`]);
//! - [`client`]: one request from the command line to the daemon;
//! - [`command`]: the commands themselves, through the daemon when it runs (the spool
//!   lock is taken) or on the files under the lock when it does not;
//! - [`render`]: the text `queue list` and `queue show` print.
//!
//! # Security
//! Access control is the file system's: the spool and the control socket
//! (`STATE_DIR/control.sock`, mode 0660) belong to the `postern` user and group. Anyone
//! who can connect can delete mail: keep the group `postern` for mail administrators.

pub mod cli;
pub mod client;
pub mod command;
pub mod protocol;
pub mod render;
pub mod server;

pub use client::{ClientError, request};
pub use command::{AdminError, QueueAccess, parse_id};
pub use protocol::{Request, RequestError, socket_path};
