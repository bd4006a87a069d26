//! Starting and stopping the daemon's parts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use postern_inbound::{Listener, RelayPolicy, ServerContext};
use postern_queue::{Queue, Spool};
use postern_tls::{CertificateConfig, ClientCertPolicy, TlsStore};
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
    Listen(std::io::Error),
    #[error("auth: {0}")]
    Auth(String),
    #[error("outbound: {0}")]
    Outbound(String),
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
    /// Outbound delivery, whose TLS policies (CAs, client certificates) SIGHUP reloads.
    smtp: Arc<postern_relay::outbound::agent::SmtpAgent>,
    outbound: postern_relay::OutboundConfig,
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
        let provider = postern_tls_provider();
        let mut problems = postern_config::Problems::new();
        let policies = postern_relay::outbound::policy::Policies::load(
            &self.outbound,
            &provider,
            &mut problems,
        );
        if problems.is_empty() {
            self.smtp.replace_policies(policies);
            info!("outbound TLS policies reloaded (CA files, client certificates)");
            true
        } else {
            let errs: Vec<String> = problems
                .locate_in("(reload)", "")
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect();
            warn!(
                "outbound TLS policies NOT reloaded, the previous ones stay in use: {}",
                errs.join("; ")
            );
            false
        }
    }

    /// SIGHUP: re-read what can change without a restart. `main.rs` tells systemd
    /// `RELOADING=1` before and `READY=1` after. Anything else that learns to reload
    /// hooks in here.
    pub async fn reload(&self) {
        info!("reload requested (SIGHUP)");
        // Certificates, keys, client CAs, CRLs, partner CAs (issue #5); logs its report.
        let _ = self.reload_tls();
        self.reload_outbound();
        crate::metrics::record_certificates(&self.tls);
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
        drop(self.ops);
    }
}

/// The queue's signing hook for its own reports (bounces, delay warnings, delivery
/// reports from `MAILER-DAEMON@hostname`): `None` without `[[auth.dkim_sign]]` entries.
/// The signer picks the key by the report's From domain and signs nothing else.
pub fn report_signer(auth: Arc<postern_auth::Auth>) -> Option<postern_queue::Sign> {
    if auth.signer().is_empty() {
        return None;
    }
    Some(Arc::new(move |report: &[u8]| {
        sign_report(auth.signer(), report)
    }))
}

/// Sign one report: the `DKIM-Signature` fields to prepend, if a key applies (the queue
/// logs that it signed). A signing failure is logged and the report goes out unsigned, as relayed mail does.
pub fn sign_report(signer: &postern_auth::Signer, report: &[u8]) -> Option<Vec<u8>> {
    match signer.sign(report) {
        Ok(signed) => signed.map(|s| s.headers.into_bytes()),
        Err(e) => {
            warn!("DKIM signing of a delivery report failed, it is sent unsigned: {e}");
            None
        }
    }
}

/// Start everything a validated configuration describes.
pub async fn start(config: &Config) -> Result<Running, StartError> {
    let hostname = config.hostname();
    let state = &config.server.state_dir;
    std::fs::create_dir_all(state).map_err(|source| StartError::StateDir {
        path: state.display().to_string(),
        source,
    })?;

    let tls_store = Arc::new(TlsStore::load(
        config.tls.profile,
        cert_configs(config, &hostname, state)?,
    )?);
    for c in tls_store.resolver().certs().iter() {
        info!(
            "serving {:?} certificate {} (TLS profile {})",
            c.algorithm,
            c.info.as_ref().map(|i| i.subject.as_str()).unwrap_or("?"),
            config.tls.profile
        );
    }
    watch_outbound_certs(config, &tls_store);
    let tls = Some(tls_store.server_config(None)?);
    let partners = Arc::new(postern_inbound::Partners::load(&config.inbound)?);
    for r in partners.reloadables() {
        tls_store.add_reloadable(r);
    }

    let queue_dir = config.queue_dir();
    let queue_lock = crate::operations::lock_queue(&queue_dir)?;
    let spool = Spool::open(&queue_dir).map_err(|source| StartError::Queue {
        path: queue_dir.display().to_string(),
        source,
    })?;
    let provider = postern_tls_provider();
    let mut problems = postern_config::Problems::new();
    let policies =
        postern_relay::outbound::policy::Policies::load(&config.outbound, &provider, &mut problems);
    if !problems.is_empty() {
        return Err(StartError::Outbound(
            "the outbound TLS policies could not be loaded (run check-config)".into(),
        ));
    }
    let dns =
        postern_relay::outbound::dns::Dns::new(&config.resolver).map_err(StartError::Outbound)?;
    let helo = config
        .outbound
        .helo_name
        .clone()
        .unwrap_or_else(|| hostname.clone());
    let smtp = Arc::new(postern_relay::outbound::agent::SmtpAgent::new(
        config.outbound.clone(),
        helo,
        dns,
        policies,
    ));
    // Known before the queue starts delivering; the bound ports replace them below.
    smtp.own_addresses()
        .set(config.listener.iter().map(|l| l.address).collect());
    let router = Arc::new(postern_relay::Router::new(
        &config.route,
        state,
        &hostname,
        // `[outbound] enabled = false`: nothing is delivered over SMTP.
        config.outbound.enabled.then(|| smtp.clone()),
    ));
    let auth = Some(Arc::new(
        postern_auth::Auth::new(
            &config.auth,
            &hostname,
            &config.resolver.nameservers,
            config.resolver.timeout.get(),
        )
        .map_err(StartError::Auth)?,
    ));
    let queue = Queue::start_signed(
        Arc::new(spool),
        config.queue.clone(),
        router.clone(),
        &hostname,
        auth.clone().and_then(report_signer),
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
        })
    };
    let ctx = make_ctx(tls, None);
    let (shutdown, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    let mut tasks = Vec::new();
    for l in &config.listener {
        let mode = l.mode;
        // A listener that asks for client certificates gets its own TLS configuration.
        let lctx = match (&l.client_certificates, &l.client_ca) {
            (postern_inbound::ClientCertificates::Off, _) | (_, None) => ctx.clone(),
            (mode, Some(ca)) => {
                let mandatory = *mode == postern_inbound::ClientCertificates::Require;
                let policy = Arc::new(ClientCertPolicy::new(
                    config.tls.profile,
                    ca,
                    &l.crl,
                    mandatory,
                )?);
                make_ctx(
                    Some(tls_store.server_config(Some(policy.clone()))?),
                    Some(policy),
                )
            }
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
    let ops = crate::operations::start(config, &queue, queue_lock, &rx, &mut tasks).await?;
    crate::metrics::record_certificates(&tls_store);
    info!(
        "postern {} started: hostname={hostname}, state_dir={}",
        env!("CARGO_PKG_VERSION"),
        state.display()
    );
    tls_store.warn_expiring(postern_tls::store::unix_now());
    tasks.push(tokio::spawn(expiry_watch(tls_store.clone(), rx.clone())));
    Ok(Running {
        addrs,
        queue,
        tls: tls_store,
        shutdown,
        tasks,
        ops,
        smtp,
        outbound: config.outbound.clone(),
    })
}

/// Warn about outbound client certificates close to expiry, as for served ones.
fn watch_outbound_certs(config: &Config, store: &TlsStore) {
    let mut files: Vec<&Path> = config
        .outbound
        .client_certificate
        .iter()
        .map(|c| c.chain.as_path())
        .collect();
    for p in &config.outbound.policy {
        if let Some(postern_relay::outbound::config::ClientCertChoice::Own(c)) =
            &p.client_certificate
        {
            files.push(&c.chain);
        }
    }
    for f in files {
        let info = postern_tls::read_chain(f)
            .ok()
            .and_then(|c| postern_tls::x509::CertInfo::parse(&c[0]).ok());
        if let Some(info) = info {
            store.watch_expiry(
                format!("{} (outbound client certificate)", f.display()),
                info,
            );
        }
    }
}

/// The certificates to serve: configured, or self-signed ones generated on first start.
fn cert_configs(
    config: &Config,
    hostname: &str,
    state: &Path,
) -> Result<Vec<CertificateConfig>, StartError> {
    let mut certs = config.tls.certificate.clone();
    if certs.is_empty() {
        let dir = state.join("tls");
        let (generated, fresh) = postern_tls::selfsigned::ensure(&dir, hostname)?;
        warn!(
            "no [[tls.certificate]] configured: STARTTLS uses SELF-SIGNED certificates for {hostname} ({} in {}). \
             Peers that verify certificates will refuse them. For real use, add [[tls.certificate]] \
             entries with chain = \"/path/fullchain.pem\" and key = \"/path/privkey.pem\" (RSA-2048 and ECDSA P-256 recommended).",
            if fresh { "generated now" } else { "reused" },
            dir.display()
        );
        certs = generated;
    }
    Ok(certs)
}

/// Twice a day, warn about certificates that expire within 21 days.
async fn expiry_watch(store: Arc<TlsStore>, mut stop: watch::Receiver<bool>) {
    let period = std::time::Duration::from_secs(12 * 3600);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {
                store.warn_expiring(postern_tls::store::unix_now());
            }
            _ = stop.changed() => return,
        }
    }
}

fn postern_tls_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
