//! `postern queue ...`: the commands, as functions returning typed results (the binary
//! prints them).
//!
//! If the spool lock ([`crate::SpoolLock`]) is free, no daemon runs and the command works
//! on the files itself, holding the lock so that a daemon started meanwhile waits for
//! nothing and finds a consistent spool (it refuses to start while the lock is held). If
//! the lock is taken, the command goes through the daemon's control socket and the daemon
//! makes the change.
//!
//! # Security
//! Queue IDs are parsed as [`QueueId`] before any file is named. Files written by root
//! (an operator with sudo) are given back to the spool's owner when the command ends.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::client::{self, ClientError};
use super::protocol::{Request, socket_path};
use crate::admin::{MessageDetail, MessageSummary, Place};
use crate::{AdminOp, QueueConfig, QueueId, Sign, Spool, SpoolLock};

/// Why a queue command failed. The text is what the operator reads after
/// `postern queue: `.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("there is no queue at {} (has postern run with this configuration? see --config)", .0.display())]
    NoQueue(PathBuf),
    #[error("{0} (run this as root, as the postern user, or as a member of its group)")]
    Lock(std::io::Error),
    #[error("cannot open the queue: {0}")]
    Open(std::io::Error),
    #[error("cannot read the queue: {0}")]
    Read(std::io::Error),
    #[error("{0:?} is not a queue ID (18 hexadecimal digits, as in the logs)")]
    BadId(String),
    #[error(
        "the queue is locked by a running postern, but it does not answer on its control socket ({0}); it may be starting or stopping: try again"
    )]
    DaemonSilent(ClientError),
    #[error("{0}")]
    Daemon(ClientError),
    #[error("the daemon sent no data")]
    NoData,
    #[error("cannot read the daemon's answer: {0}")]
    Answer(serde_json::Error),
    /// The queue refused the change (no such message, wrong place, ...).
    #[error("{0}")]
    Refused(#[from] crate::OpError),
    #[error("cannot load the DKIM signing keys: {0}")]
    Signer(Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<ClientError> for AdminError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotRunning => AdminError::DaemonSilent(e),
            e => AdminError::Daemon(e),
        }
    }
}

/// A queue ID as an operator types it (either case).
pub fn parse_id(s: &str) -> Result<QueueId, AdminError> {
    QueueId::parse(&s.to_ascii_uppercase()).ok_or_else(|| AdminError::BadId(s.to_string()))
}

/// What an offline `bounce` needs to write the bounce as the daemon would.
pub struct Offline<'a> {
    pub config: &'a QueueConfig,
    pub hostname: &'a str,
    /// Loads the DKIM signer for the bounce; called only for `bounce`.
    pub sign: &'a dyn Fn() -> Result<Option<Sign>, Box<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Debug for Offline<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offline")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// Where a command is carried out: through the daemon, or on the files under the lock
/// (held until this is dropped).
#[derive(Debug)]
pub struct QueueAccess {
    target: Target,
}

#[derive(Debug)]
enum Target {
    Daemon(PathBuf),
    Files { spool: Arc<Spool>, _lock: SpoolLock },
}

impl QueueAccess {
    /// Take the spool lock, or find the running daemon's control socket.
    pub fn open(queue_dir: &Path, state_dir: &Path) -> Result<QueueAccess, AdminError> {
        if !queue_dir.is_dir() {
            return Err(AdminError::NoQueue(queue_dir.to_path_buf()));
        }
        let target = match SpoolLock::try_acquire(queue_dir).map_err(AdminError::Lock)? {
            None => Target::Daemon(socket_path(state_dir)),
            Some(lock) => Target::Files {
                spool: Arc::new(Spool::open(queue_dir).map_err(AdminError::Open)?),
                _lock: lock,
            },
        };
        Ok(QueueAccess { target })
    }

    /// Every message (`queue list`), unfiltered.
    pub fn list(&self) -> Result<Vec<MessageSummary>, AdminError> {
        match &self.target {
            Target::Daemon(sock) => from_daemon(sock, Request::List),
            Target::Files { spool, .. } => spool.summaries().map_err(AdminError::Read),
        }
    }

    /// One message (`queue show`).
    pub fn show(&self, id: QueueId) -> Result<MessageDetail, AdminError> {
        match &self.target {
            Target::Daemon(sock) => from_daemon(sock, Request::Show(id)),
            Target::Files { spool, .. } => Ok(spool.detail(id)?),
        }
    }

    /// Carry out a change, through the daemon or on the files; the text to print.
    pub fn change(&self, op: AdminOp, offline: &Offline<'_>) -> Result<String, AdminError> {
        match &self.target {
            Target::Daemon(sock) => Ok(client::request(sock, Request::Op(op))?.0),
            Target::Files { spool, .. } => offline_change(spool, op, offline),
        }
    }
}

impl Drop for QueueAccess {
    fn drop(&mut self) {
        if let Target::Files { spool, .. } = &self.target {
            fix_ownership(spool);
        }
    }
}

fn from_daemon<T: serde::de::DeserializeOwned>(sock: &Path, req: Request) -> Result<T, AdminError> {
    let (_, json) = client::request(sock, req)?;
    let json = json.ok_or(AdminError::NoData)?;
    serde_json::from_str(&json).map_err(AdminError::Answer)
}

/// A change made with no daemon running.
fn offline_change(spool: &Arc<Spool>, op: AdminOp, o: &Offline<'_>) -> Result<String, AdminError> {
    let not_running = "(postern is not running: it acts on this when it starts)";
    match op {
        AdminOp::Flush(Some(id)) => {
            spool.clear_retry_times(id)?;
            Ok(format!("{id}: due now {not_running}"))
        }
        AdminOp::Flush(None) => {
            let mut n = 0;
            for m in spool.summaries().map_err(crate::OpError::List)? {
                if m.place == Place::Active
                    && let Some(id) = QueueId::parse(&m.id)
                {
                    spool.clear_retry_times(id)?;
                    n += 1;
                }
            }
            Ok(format!("{n} message(s) due now {not_running}"))
        }
        AdminOp::Hold(id) => {
            move_checked(spool, id, Place::Active, Place::Hold).map(|()| format!("{id}: on hold"))
        }
        AdminOp::Release(id) => move_checked(spool, id, Place::Hold, Place::Active)
            .map(|()| format!("{id}: released {not_running}")),
        AdminOp::Delete(id) => {
            let place = spool.locate(id).ok_or(crate::OpError::NoSuchMessage(id))?;
            spool
                .delete_message(id, place)
                .map_err(crate::OpError::io(id, "could not be deleted"))?;
            Ok(format!("{id}: deleted"))
        }
        AdminOp::Bounce(id) => {
            let sign = (o.sign)().map_err(AdminError::Signer)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(AdminError::Runtime)?;
            rt.block_on(crate::bounce_offline(
                spool.clone(),
                o.config.clone(),
                o.hostname,
                id,
                sign,
            ))
            .map(|t| format!("{t} {not_running}"))
            .map_err(AdminError::Refused)
        }
    }
}

fn move_checked(spool: &Spool, id: QueueId, from: Place, to: Place) -> Result<(), AdminError> {
    match spool.locate(id) {
        Some(p) if p == from => spool
            .move_message(id, from, to)
            .map_err(|source| crate::OpError::Move { id, to, source }.into()),
        Some(p) => Err(crate::OpError::NotIn(id, p, from).into()),
        None => Err(crate::OpError::NoSuchMessage(id).into()),
    }
}

/// The messages `queue list --state --domain` selects.
pub fn select(
    all: Vec<MessageSummary>,
    state: Option<&str>,
    domain: Option<&str>,
) -> Vec<MessageSummary> {
    let domain = domain.map(|d| d.to_ascii_lowercase());
    all.into_iter()
        .filter(|m| state.is_none_or(|s| m.place.as_str() == s))
        .filter(|m| {
            domain.as_deref().is_none_or(|d| {
                m.recipients.iter().any(|r| {
                    r.address
                        .rsplit_once('@')
                        .is_some_and(|(_, rd)| rd.eq_ignore_ascii_case(d))
                })
            })
        })
        .collect()
}

/// Files written by root (an operator with sudo) go to the spool's owner, so that the
/// daemon, running as that user, can rewrite them later.
fn fix_ownership(spool: &Spool) {
    use std::os::unix::fs::MetadataExt;
    let Some(root) = spool.active_dir().parent() else {
        return;
    };
    let Ok(owner) = std::fs::metadata(root) else {
        return;
    };
    let (uid, gid) = (owner.uid(), owner.gid());
    let mut paths = vec![root.join("lock")];
    for place in Place::ALL {
        let dir = spool.dir_of(place).to_path_buf();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            paths.extend(rd.flatten().map(|e| e.path()));
        }
        paths.push(dir);
    }
    for p in paths {
        if let Ok(m) = std::fs::symlink_metadata(&p)
            && (m.uid() != uid || m.gid() != gid)
        {
            let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
        }
    }
}
