//! A connection that is plain TCP (or any byte stream) until STARTTLS, TLS after: one type
//! for both sides, so the inbound listener and the outbound client share it.
//!
//! # Security
//! The only way from [`MaybeTls::Plain`] to [`MaybeTls::Tls`] is [`MaybeTls::take_plain`]
//! followed by a handshake; while the handshake owns the plain stream the connection is
//! [`MaybeTls::Upgrading`], and reading or writing it fails instead of reaching the
//! socket in clear.
//!
//! # Standards
//! RFC 3207 (STARTTLS).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustls::CommonState;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsStream;

/// Plain or TLS (client or server side); `Upgrading` only while a handshake owns the
/// plain stream (or after it failed).
#[derive(Debug)]
pub enum MaybeTls<S> {
    Plain(S),
    Tls(Box<TlsStream<S>>),
    Upgrading,
}

impl<S> MaybeTls<S> {
    /// A TLS stream, client or server side.
    pub fn tls(s: impl Into<TlsStream<S>>) -> MaybeTls<S> {
        MaybeTls::Tls(Box::new(s.into()))
    }

    /// Take the plain stream out for a handshake, leaving `Upgrading`. `None` (and the
    /// stream unchanged) when it is not plain.
    pub fn take_plain(&mut self) -> Option<S> {
        match std::mem::replace(self, MaybeTls::Upgrading) {
            MaybeTls::Plain(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The TLS session's state (version, cipher suite, peer certificates), once TLS is up.
    pub fn tls_state(&self) -> Option<&CommonState> {
        match self {
            MaybeTls::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }
}

fn upgrading() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection is being upgraded to TLS",
    )
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTls<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTls<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            MaybeTls::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            MaybeTls::Upgrading => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            MaybeTls::Upgrading => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn plain_passes_through_and_upgrading_refuses() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut s = MaybeTls::Plain(a);
        s.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        assert!(!s.is_tls() && s.tls_state().is_none());
        let plain = s.take_plain();
        assert!(plain.is_some());
        assert!(s.take_plain().is_none());
        assert_eq!(
            s.write_all(b"x").await.unwrap_err().kind(),
            io::ErrorKind::NotConnected
        );
        assert!(s.read(&mut got).await.is_err());
    }
}
