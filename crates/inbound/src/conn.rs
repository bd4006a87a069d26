//! A connection: the stream (plain or TLS), an input buffer and an output buffer.
//!
//! Replies are queued in the output buffer and flushed only when the session is about to
//! wait for input, which is exactly the batching RFC 2920 PIPELINING asks for.

use std::io;
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Plain or TLS; `Upgrading` only while the handshake owns the plain stream. The same
/// type as the outbound client's ([`postern_tls::MaybeTls`]).
pub(crate) type Stream<S> = postern_tls::MaybeTls<S>;

/// Why no line could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Timeout,
    Closed,
    Io(io::Error),
}

/// A command line, or the news that one was too long (and was discarded).
pub(crate) enum Line {
    Ok(Vec<u8>),
    TooLong,
}

const READ_CHUNK: usize = 16 << 10;

pub(crate) struct Conn<S> {
    pub(crate) stream: Stream<S>,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub(crate) fn new(stream: Stream<S>) -> Conn<S> {
        Conn {
            stream,
            rbuf: Vec::with_capacity(READ_CHUNK),
            rpos: 0,
            wbuf: Vec::with_capacity(1024),
        }
    }

    /// Queue a reply.
    pub(crate) fn send(&mut self, reply: &postern_smtp::Reply) {
        reply.write_to(&mut self.wbuf);
    }

    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Bytes received but not yet consumed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rpos..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.rpos = (self.rpos + n).min(self.rbuf.len());
        if self.rpos == self.rbuf.len() {
            self.rbuf.clear();
            self.rpos = 0;
        }
    }

    /// Throw away everything buffered; returns how much that was.
    pub(crate) fn discard_buffered(&mut self) -> usize {
        let n = self.rbuf.len() - self.rpos;
        self.rbuf.clear();
        self.rpos = 0;
        n
    }

    /// Flush pending replies, then read more input (waiting at most `timeout`).
    pub(crate) async fn fill(&mut self, timeout: Duration) -> Result<usize, ReadError> {
        self.fill_until(Instant::now() + timeout).await
    }

    /// Flush pending replies, then read more input, giving up at `deadline`.
    pub(crate) async fn fill_until(&mut self, deadline: Instant) -> Result<usize, ReadError> {
        self.flush().await.map_err(ReadError::Io)?;
        if self.rpos > 0 {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        let start = self.rbuf.len();
        self.rbuf.resize(start + READ_CHUNK, 0);
        let r = tokio::time::timeout_at(deadline, self.stream.read(&mut self.rbuf[start..])).await;
        let n = match r {
            Err(_) => {
                self.rbuf.truncate(start);
                return Err(ReadError::Timeout);
            }
            Ok(Err(e)) => {
                self.rbuf.truncate(start);
                return Err(ReadError::Io(e));
            }
            Ok(Ok(n)) => n,
        };
        self.rbuf.truncate(start + n);
        if n == 0 {
            Err(ReadError::Closed)
        } else {
            Ok(n)
        }
    }

    /// Read one line ending in LF (CR before it removed). A line longer than `max` octets
    /// is discarded up to its end and reported as [`Line::TooLong`]; memory stays bounded.
    /// `timeout` bounds the whole line, not each read, so a client trickling one byte at a
    /// time cannot hold the session open indefinitely.
    pub(crate) async fn read_line(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Line, ReadError> {
        let deadline = Instant::now() + timeout;
        let mut discarding = false;
        loop {
            let buf = self.buffered();
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                if discarding || i > max {
                    self.consume(i + 1);
                    return Ok(Line::TooLong);
                }
                let mut line = buf[..i].to_vec();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.consume(i + 1);
                return Ok(Line::Ok(line));
            }
            if buf.len() > max {
                discarding = true;
                self.discard_buffered();
            }
            self.fill_until(deadline).await?;
        }
    }

    pub(crate) async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
