//! The scanner's I/O: connect, STARTTLS, send one ClientHello, read the first flight; and
//! full rustls handshakes (to see what a real client gets, and to test a client certificate).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use postern_smtp::client::{Capabilities, Reply, ReplyParser};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::hello::{Flight, HelloSpec, MAX_FLIGHT, client_hello, parse_flight};
use crate::{ScanError, Target};

/// Per network step.
const STEP: Duration = Duration::from_secs(15);

/// Read one reply with the shared, bounded parser of `postern_smtp::client`, one octet at
/// a time: after the `220` to STARTTLS the next bytes are the server's TLS records, and
/// none of them may be taken here.
async fn read_reply<S: AsyncRead + Unpin>(s: &mut S) -> Result<Reply, ScanError> {
    let mut parser = ReplyParser::new();
    loop {
        let mut b = [0u8; 1];
        let n = timeout(STEP, s.read(&mut b))
            .await
            .map_err(|_| ScanError::Smtp("timed out waiting for an SMTP reply".into()))?
            .map_err(|e| ScanError::Smtp(format!("read: {e}")))?;
        if n == 0 {
            return Err(ScanError::Smtp("the server closed the connection".into()));
        }
        let f = parser
            .feed(&b)
            .map_err(|e| ScanError::Smtp(format!("not an SMTP reply: {e}")))?;
        if let Some(r) = f.reply {
            return Ok(r);
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, line: &str) -> Result<(), ScanError> {
    timeout(STEP, s.write_all(format!("{line}\r\n").as_bytes()))
        .await
        .map_err(|_| ScanError::Smtp("timed out sending".into()))?
        .map_err(|e| ScanError::Smtp(format!("write: {e}")))
}

/// The EHLO name: our address literal.
fn ehlo_name(tcp: &TcpStream) -> String {
    match tcp.local_addr().map(|a| a.ip()) {
        Ok(std::net::IpAddr::V4(ip)) => format!("[{ip}]"),
        Ok(std::net::IpAddr::V6(ip)) => format!("[IPv6:{ip}]"),
        Err(_) => "tls-check.invalid".into(),
    }
}

/// Connect; on a STARTTLS target, greet and ask for TLS. Returns the stream, ready for a
/// ClientHello. `Err(ScanError::NoStartTls)` when the server does not offer it.
pub async fn open(t: &Target) -> Result<TcpStream, ScanError> {
    let mut tcp = timeout(STEP, TcpStream::connect((t.host.as_str(), t.port)))
        .await
        .map_err(|_| ScanError::Connect(format!("{}:{}: timed out", t.host, t.port)))?
        .map_err(|e| ScanError::Connect(format!("{}:{}: {e}", t.host, t.port)))?;
    if t.implicit {
        return Ok(tcp);
    }
    let greeting = read_reply(&mut tcp).await?;
    if greeting.code != 220 {
        return Err(ScanError::Smtp(format!("greeting was {greeting}")));
    }
    let name = ehlo_name(&tcp);
    send(&mut tcp, &format!("EHLO {name}")).await?;
    let ehlo = read_reply(&mut tcp).await?;
    if ehlo.code != 250 {
        return Err(ScanError::Smtp(format!("EHLO answered {}", ehlo.code)));
    }
    if !Capabilities::from_reply(&ehlo).starttls {
        return Err(ScanError::NoStartTls);
    }
    send(&mut tcp, "STARTTLS").await?;
    let r = read_reply(&mut tcp).await?;
    if r.code != 220 {
        return Err(ScanError::Smtp(format!("STARTTLS answered {r}")));
    }
    Ok(tcp)
}

/// Send one ClientHello and read the server's first flight.
pub async fn hello(t: &Target, spec: &HelloSpec) -> Result<Flight, ScanError> {
    let mut tcp = open(t).await?;
    timeout(STEP, tcp.write_all(&client_hello(spec)))
        .await
        .map_err(|_| ScanError::Connect("timed out sending the ClientHello".into()))?
        .map_err(|e| ScanError::Connect(format!("sending the ClientHello: {e}")))?;
    let mut data = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match timeout(STEP, tcp.read(&mut buf)).await {
            Ok(Ok(n)) => n,
            // A reset or a timeout after some bytes: judge what arrived.
            Ok(Err(_)) | Err(_) => 0,
        };
        if n == 0 {
            return match parse_flight(&data) {
                Ok(f) => Ok(f),
                Err(e) if data.is_empty() => Err(ScanError::Connect(format!(
                    "the server closed the connection without answering ({})",
                    e.0
                ))),
                Err(e) => Err(ScanError::Protocol(e.0)),
            };
        }
        data.extend_from_slice(&buf[..n]);
        let f = parse_flight(&data).map_err(|e| ScanError::Protocol(e.0))?;
        if f.complete || data.len() > MAX_FLIGHT {
            return Ok(f);
        }
    }
}

/// Records the server's chain; accepts anything (trust is judged separately).
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        ee: &CertificateDer<'_>,
        inter: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let mut c = self.chain.lock().unwrap_or_else(|p| p.into_inner());
        *c = std::iter::once(ee)
            .chain(inter)
            .map(|x| x.clone().into_owned())
            .collect();
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why the server did not go on talking SMTP after a handshake with a client certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AfterHandshake {
    #[error("greeting {0}")]
    Greeting(String),
    #[error("EHLO answered {0}")]
    Ehlo(String),
    /// The connection failed or the reply did not parse.
    #[error("{0}")]
    Io(String),
}

/// What a full handshake with rustls gave.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub version: String,
    pub suite: String,
    pub group: Option<String>,
    pub chain: Vec<CertificateDer<'static>>,
    /// With a client certificate: did the server go on talking SMTP after the handshake?
    /// `Err` carries why not.
    pub after: Result<(), AfterHandshake>,
}

/// A full handshake with rustls under `provider`, presenting `client` if given; then (on
/// STARTTLS targets) an EHLO to see that the server accepts the session.
pub async fn handshake(
    t: &Target,
    provider: CryptoProvider,
    client: Option<&postern_tls::LoadedCert>,
) -> Result<Handshake, ScanError> {
    let provider = Arc::new(provider);
    let rec = Arc::new(Recorder {
        provider: provider.clone(),
        chain: Mutex::new(Vec::new()),
    });
    let config: Arc<ClientConfig> =
        postern_tls::client::client_config_with(provider, rec.clone(), client)
            .map_err(|e| ScanError::Protocol(e.to_string()))?;
    let tcp = open(t).await?;
    let name = ServerName::try_from(t.sni())
        .map_err(|e| ScanError::Connect(format!("bad server name: {e}")))?
        .to_owned();
    let connector = tokio_rustls::TlsConnector::from(config);
    let mut tls = timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| ScanError::Connect("TLS handshake timed out".into()))?
        .map_err(|e| ScanError::Handshake(e.to_string()))?;
    let (version, suite, group) = {
        let c = tls.get_ref().1;
        (
            c.protocol_version()
                .map(|v| match v {
                    rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                    rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                    v => format!("{v:?}"),
                })
                .unwrap_or_default(),
            c.negotiated_cipher_suite()
                .map(|s| crate::suites::describe(u16::from(s.suite())).name)
                .unwrap_or_default(),
            c.negotiated_key_exchange_group()
                .map(|g| crate::suites::group_name(u16::from(g.name()))),
        )
    };
    let chain = rec.chain.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let after = if t.implicit {
        // Implicit TLS: the greeting comes now.
        match read_reply(&mut tls).await {
            Ok(r) if r.code == 220 => Ok(()),
            Ok(r) => Err(AfterHandshake::Greeting(r.to_string())),
            Err(e) => Err(AfterHandshake::Io(e.to_string())),
        }
    } else {
        match send(&mut tls, "EHLO tls-check.invalid").await {
            Ok(()) => match read_reply(&mut tls).await {
                Ok(r) if r.code == 250 => Ok(()),
                Ok(r) => Err(AfterHandshake::Ehlo(r.to_string())),
                Err(e) => Err(AfterHandshake::Io(e.to_string())),
            },
            Err(e) => Err(AfterHandshake::Io(e.to_string())),
        }
    };
    let _ = send(&mut tls, "QUIT").await;
    let _ = tls.shutdown().await;
    Ok(Handshake {
        version,
        suite,
        group,
        chain,
        after,
    })
}
