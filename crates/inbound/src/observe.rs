//! The facts of every accepted message, for whoever wants them (the report store of
//! `postern-reports`: DMARC aggregate reports and `postern tls-report`). The session
//! calls [`InboundObserver::accepted`] once the message is durable. Local submissions
//! (`postern sendmail`) are not reported: they come from no peer.

use std::net::IpAddr;

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub client_ip: IpAddr,
    /// The EHLO/HELO name the client gave.
    pub helo: String,
    /// The MAIL FROM domain; `None` for the null reverse path.
    pub sender_domain: Option<String>,
    /// The recipients, as given at RCPT TO.
    pub recipients: Vec<String>,
    /// `None`: the session was plaintext.
    pub tls: Option<postern_tls::TlsSummary>,
    /// The client presented a certificate that verified.
    pub client_cert_verified: bool,
    /// The DMARC evaluation, when the From domain has a record and checks ran.
    pub dmarc: Option<postern_auth::DmarcFacts>,
    /// The message as stored, only when [`InboundObserver::wants_content`] asked for it.
    pub content: Option<Vec<u8>>,
}

/// Receives [`InboundMessage`]s. Must not block: called on the session's path.
pub trait InboundObserver: Send + Sync + std::fmt::Debug {
    fn accepted(&self, message: InboundMessage);

    /// Whether [`InboundMessage::content`] should be filled for these recipients.
    fn wants_content(&self, _recipients: &[String]) -> bool {
        false
    }
}
