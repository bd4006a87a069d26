//! Local submission: an SMTP session over a Unix-domain socket (`submit.sock`), used by
//! `postern sendmail`, so that the daemon knows which local user submitted a message.
//!
//! The session is the ordinary inbound one. The client is recorded as `localhost[uid=N]`
//! in the log and as `(Postern session S, from userid N)` in the `Received:` field, as
//! Postfix does for its local `sendmail`.
//!
//! # Security
//! - The uid comes from the kernel (`SO_PEERCRED`), never from the client; a connection
//!   whose credentials cannot be read is closed unanswered.
//! - The socket is mode 0666 (every local user may submit, as with Postfix's `maildrop`
//!   / `public/pickup`), in a directory the daemon creates 0755 when missing. A path
//!   that exists and is not a socket (a file, a link) is never removed or followed.
//! - Rights are exactly those of a TCP client at `127.0.0.1`: relay permission
//!   (`trusted_networks`) and `[[auth.dkim_sign]] sources = ["local"]` see that address.
//!   The listener limits (the first `[[listener]]`'s) apply, all local submissions
//!   counting as one client for `max_connections_per_ip`, as loopback TCP clients do.
//!   No STARTTLS is offered: the stream never leaves the kernel.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postern_smtp::reply::std_replies;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{Instrument, error, info, info_span, warn};

use crate::conn::Stream;
use crate::listener::{Limits, drain};
use crate::session::Session;
use crate::{ListenerConfig, Mode, ServerContext};

/// The address every local submission is treated as coming from.
const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The bound submission socket.
#[derive(Debug)]
pub struct LocalSubmit {
    path: PathBuf,
    socket: UnixListener,
    config: Arc<ListenerConfig>,
    ctx: Arc<ServerContext>,
    limits: Arc<Limits>,
}

impl LocalSubmit {
    /// Start `postern sendmail`'s socket at `path` with `config`'s session limits, or say
    /// why not. Optional: without it sendmail submits over TCP, so a failure is a warning.
    pub fn start(
        path: &Path,
        config: &ListenerConfig,
        ctx: Arc<ServerContext>,
        shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        match LocalSubmit::bind(path, config.clone(), ctx) {
            Ok(local) => {
                info!("local submission on {} (postern sendmail)", path.display());
                Some(tokio::spawn(local.run(shutdown)))
            }
            Err(e) => {
                warn!(
                    "{e}; postern sendmail will submit to the first [[listener]] over TCP, and the submitting uid is not recorded"
                );
                None
            }
        }
    }

    /// Bind `path` (its directory is created 0755 if missing; a stale socket is replaced)
    /// and make it 0666. `config` gives the session limits; its mode and TLS requirement
    /// are ignored (plain SMTP). `ctx` should have no TLS configuration.
    pub fn bind(
        path: &Path,
        mut config: ListenerConfig,
        ctx: Arc<ServerContext>,
    ) -> io::Result<LocalSubmit> {
        let annotate = |e: io::Error, what: &str| {
            io::Error::new(
                e.kind(),
                format!("submit socket {}: {what}: {e}", path.display()),
            )
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o755)
                .create(dir)
                .map_err(|e| annotate(e, "cannot create its directory"))?;
            // Whatever the umask: every local user must reach the socket.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| annotate(e, "cannot make its directory 0755"))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(path).map_err(|e| annotate(e, "cannot remove the old one"))?
            }
            Ok(_) => {
                return Err(annotate(
                    io::Error::from(io::ErrorKind::AlreadyExists),
                    "the path exists and is not a socket (remove it or set [server] submit_socket_path)",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(annotate(e, "cannot look at the path")),
        }
        let socket = UnixListener::bind(path).map_err(|e| annotate(e, "cannot listen"))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| annotate(e, "cannot make it 0666"))?;
        config.mode = Mode::Plain;
        config.require_tls = false;
        let limits = Limits::new(&config);
        Ok(LocalSubmit {
            path: path.to_path_buf(),
            socket,
            config: Arc::new(config),
            ctx,
            limits,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept submissions until `shutdown` turns true, then remove the socket and let
    /// the sessions finish (as a TCP listener does).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                a = self.socket.accept() => a,
                _ = shutdown.changed() => break,
            };
            let mut stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    error!("accept failed on {}: {e}", self.path.display());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let uid = match stream.peer_cred() {
                Ok(c) => c.uid(),
                Err(e) => {
                    warn!("local submission refused: cannot read the client's credentials: {e}");
                    continue;
                }
            };
            let Some(slot) = self.limits.acquire(LOOPBACK.ip()) else {
                warn!("connection refused from localhost[uid={uid}]: too many connections");
                crate::metrics::refused(&self.config, "too_many_connections");
                tokio::spawn(async move {
                    let reply = std_replies::too_many_connections().to_bytes();
                    let _ = stream.write_all(&reply).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            };
            let session = Session::new(
                Stream::Plain(stream),
                LOOPBACK,
                None,
                self.config.clone(),
                self.ctx.clone(),
                shutdown.clone(),
            )
            .with_uid(uid);
            let span = info_span!("smtp", session = %session.id(), client = "localhost", uid);
            tokio::spawn(
                async move {
                    info!("connect from localhost[uid={uid}] (local submission)");
                    session.run().await;
                    drop(slot);
                }
                .instrument(span),
            );
        }
        info!("submit socket {} stopped", self.path.display());
        let LocalSubmit {
            path,
            socket,
            config,
            limits,
            ..
        } = self;
        drop(socket);
        let _ = std::fs::remove_file(&path);
        drain(&config, &limits).await;
    }
}
