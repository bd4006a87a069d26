//! Starting and stopping the daemon's parts.

use std::net::SocketAddr;
use std::sync::Arc;

use postern_inbound::{Listener, RelayPolicy, ServerContext};
use postern_queue::{Queue, Spool, SpoolLock};
use postern_relay::outbound::agent::SmtpAgent;
use postern_tls::{ClientCertPolicy, TlsStore};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::Config;

/// Why the daemon could not start (the configuration was valid, the machine said no).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] postern_tls::TlsError),
    #[error("cannot open the queue in {path}: {source}")]
    Queue {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Listen(#[from] std::io::Error),
    #[error("auth: {0}")]
    Auth(String),
    #[error("outbound: {0}")]
    Outbound(#[from] postern_relay::outbound::build::BuildError),
    #[error("DNS: {0}")]
    Dns(#[from] postern_dns::BuildError),
}

/// A started daemon.
#[derive(Debug)]
pub struct Running {
    /// Bound addresses, in `[[listener]]` order (useful with port 0).
    pub addrs: Vec<SocketAddr>,
    pub queue: Queue,
    /// Certificates, client CAs, CRLs and partner CAs: [`Running::reload_tls`] re-reads them.
    pub tls: Arc<TlsStore>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Spool lock, control socket, metrics (see `operations.rs`).
    pub ops: crate::operations::Operations,
    pub mta_sts: postern_sts::serve::Bound,
    /// Outbound delivery, whose TLS policies (CAs, client certificates) SIGHUP reloads.
    smtp: Arc<SmtpAgent>,
    outbound: postern_relay::OutboundConfig,
    reports: postern_reports::Reports,
}

impl Running {
    /// Re-read certificates, keys, client CAs, CRLs and partner CAs (SIGHUP). Sessions
    /// keep running; new handshakes use the new files. A file that fails to load keeps the
    /// old one in use, and the report (also logged) says why.
    pub fn reload_tls(&self) -> postern_tls::ReloadReport {
        self.tls.reload()
    }

    /// Re-read the outbound policies' CA files and client certificates. If any fails to
    /// load, the old policies stay in use and the log says why.
    pub fn reload_outbound(&self) -> bool {
        self.smtp.reload_policies(&self.outbound)
    }

    /// SIGHUP: re-read what can change without a restart. `main.rs` tells systemd
    /// `RELOADING=1` before and `READY=1` after. Anything else that learns to reload
    /// hooks in here.
    pub async fn reload(&self) {
        info!("reload requested (SIGHUP)");
        // Certificates, keys, client CAs, CRLs, partner CAs (issue #5); logs its report.
        let _ = self.reload_tls();
        self.reload_outbound();
        self.tls.record_expiry_gauges();
    }

    /// Stop gracefully: stop accepting; sessions end at their next command with 421
    /// 4.3.2, a message being received is finished first (each listener waits at most
    /// [`postern_inbound::DRAIN_TIMEOUT`]); then delivery attempts in progress are given
    /// [`crate::operations::QUEUE_STOP_TIMEOUT`] to end and record their outcome.
    /// Everything acknowledged is on disk throughout.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if !self
            .queue
            .shutdown(crate::operations::QUEUE_STOP_TIMEOUT)
            .await
        {
            warn!(
                "delivery attempts still in progress after {}s are abandoned; those recipients are tried again at the next start",
                crate::operations::QUEUE_STOP_TIMEOUT.as_secs()
            );
        }
        // After the queue: the outcomes of the attempts that ended during its stop are
        // recorded too.
        self.reports.flush();
        drop(self.ops);
    }
}

/// Start everything a validated configuration describes.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let hostname = config.hostname();
    let state = &config.server.state_dir;
    // The configured directory may be a link the operator made; what lies under it is
    // never followed (postern_queue::safefs). 0750 whatever the umask.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o750)
        .create(state)
        .map_err(|source| StartError::StateDir {
            path: state.display().to_string(),
            source,
        })?;

    let tls_store = Arc::new(TlsStore::load(
        config.tls.profile,
        postern_tls::selfsigned::or_generated(
            &config.tls.certificate,
            &state.join("tls"),
            &hostname,
        )?,
    )?);
    for c in tls_store.resolver().certs().iter() {
        info!(
            "serving {:?} certificate {} (TLS profile {})",
            c.algorithm,
            c.info.as_ref().map(|i| i.subject.as_str()).unwrap_or("?"),
            config.tls.profile
        );
    }
    postern_relay::outbound::config::watch_client_certificates(&config.outbound, &tls_store);
    let tls = Some(tls_store.server_config(None)?);
    let partners = Arc::new(postern_inbound::Partners::load(&config.inbound)?);
    for r in partners.reloadables() {
        tls_store.add_reloadable(r);
    }

    let queue_dir = config.queue_dir();
    let queue_lock =
        SpoolLock::acquire_for_daemon(&queue_dir).map_err(|source| StartError::Queue {
            path: queue_dir.display().to_string(),
            source,
        })?;
    let spool = Spool::open(&queue_dir).map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;
    // One resolver (and cache) for delivery and for the SPF/DKIM/DMARC checks.
    let dns = postern_dns::Resolver::started(&config.resolver)?;
    let (smtp, router) = outbound_with(config, dns.clone())?;
    let reports =
        postern_reports::Reports::start(&config.reports, state).map_err(StartError::Listen)?;
    smtp.set_observer(Some(reports.tls_observer()));
    let auth = Some(Arc::new(
        postern_auth::Auth::new(&config.auth, &hostname, &dns)
            .map_err(|e| StartError::Auth(e.to_string()))?,
    ));
    let sign = auth.clone().and_then(postern_auth::Auth::report_hook);
    let queue = Queue::start_signed(
        Arc::new(spool),
        config.queue.clone(),
        router.clone(),
        &hostname,
        sign.clone(),
    )
    .map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;

    let make_ctx = |tls: Option<Arc<rustls::ServerConfig>>,
                    client_certs: Option<Arc<ClientCertPolicy>>| {
        let router = router.clone();
        let known = router.clone();
        Arc::new(ServerContext {
            hostname: hostname.clone(),
            relay: RelayPolicy::new(&config.relay),
            routes: Box::new(move |d| router.routes(d)),
            recipients: Box::new(move |a| known.accepts(a)),
            queue: queue.clone(),
            tls,
            client_certs,
            partners: partners.clone(),
            auth: auth.clone(),
            observer: Some(reports.inbound_observer()),
        })
    };
    let ctx = make_ctx(tls, None);
    let (shutdown, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for l in &config.listener {
        let mode = l.mode;
        let lctx = match l.client_cert_policy(config.tls.profile)? {
            None => ctx.clone(),
            Some(p) => make_ctx(Some(tls_store.server_config(Some(p.clone()))?), Some(p)),
        };
        let listener = Listener::bind(l.clone(), lctx)
            .await
            .map_err(StartError::Listen)?;
        let addr = listener.local_addr().map_err(StartError::Listen)?;
        info!(
            "listening on {addr} ({mode}{})",
            if l.require_tls { ", TLS required" } else { "" }
        );
        addrs.push(addr);
        tasks.push(tokio::spawn(listener.run(rx.clone())));
    }
    smtp.own_addresses().set(addrs.clone());
    // `postern sendmail`'s socket: the session limits of the first listener, no TLS.
    if let (Some(path), Some(first)) = (config.server.submit_socket(), config.listener.first()) {
        let ctx = make_ctx(None, None);
        tasks.extend(postern_inbound::LocalSubmit::start(
            &path,
            first,
            ctx,
            rx.clone(),
        ));
    }
    let mta_sts = postern_sts::serve::start(&config.mta_sts, &tls_store, &rx, &mut tasks).await?;
    let refresher = smtp.mta_sts().map(|s| s.refresher(rx.clone()));
    tasks.extend(refresher.map(tokio::spawn));
    // TLS-RPT to `rua=https:` destinations: the trust anchors of outbound `verify`, read
    // at each POST so that a SIGHUP reload applies.
    let agent = Arc::downgrade(&smtp);
    let poster = postern_reports::send::Poster {
        fetcher: postern_sts::fetch::Fetcher::new(dns.clone(), 443),
        roots: Arc::new(move || {
            agent
                .upgrade()
                .map(|a| a.policies().default_policy().roots.clone())
                .unwrap_or_else(|| Arc::new(rustls::RootCertStore::empty()))
        }),
    };
    tasks.push(reports.spawn_sender(
        &hostname,
        queue.clone(),
        dns,
        sign,
        Some(poster),
        rx.clone(),
    ));
    let ops = crate::operations::start(config, &queue, queue_lock, &rx, &mut tasks).await?;
    tls_store.record_expiry_gauges();
    info!(
        "postern {} started: hostname={hostname}, state_dir={}",
        env!("CARGO_PKG_VERSION"),
        state.display()
    );
    tls_store.warn_expiring(postern_tls::store::unix_now());
    tasks.push(tokio::spawn(tls_store.clone().expiry_watch(rx.clone())));
    Ok(Running {
        addrs,
        queue,
        tls: tls_store,
        shutdown,
        tasks,
        ops,
        mta_sts,
        smtp,
        outbound: config.outbound.clone(),
        reports,
    })
}

/// The SMTP agent (TLS policies, resolver) and the router over it.
type Outbound = (Arc<SmtpAgent>, Arc<postern_relay::Router>);

/// Outbound delivery as the daemon runs it: the SMTP agent (TLS policies, resolver) and
/// the router over it. `policy explain` asks these same objects.
pub fn outbound(config: &Config) -> Result<Outbound, StartError> {
    outbound_with(config, postern_dns::Resolver::new(&config.resolver)?)
}

/// `postern mta-sts`.
pub fn mta_sts(cmd: postern_sts::cli::MtaStsCommand, c: &Config) -> std::process::ExitCode {
    postern_relay::outbound::mta_sts::cli(cmd, &c.outbound, &c.resolver, &c.server.state_dir)
}

/// [`outbound`] with a resolver already built (the daemon shares one with the checks).
fn outbound_with(config: &Config, dns: postern_dns::Resolver) -> Result<Outbound, StartError> {
    let listeners: Vec<SocketAddr> = config.listener.iter().map(|l| l.address).collect();
    let setup = postern_relay::outbound::build::Setup {
        outbound: &config.outbound,
        routes: &config.route,
        state_dir: &config.server.state_dir,
        hostname: &config.hostname(),
        listeners: &listeners,
        max_hop_count: config.listener.iter().map(|l| l.max_hop_count).max(),
    };
    Ok(postern_relay::outbound::build::build(setup, dns)?)
}
