//! Replacing the top of a message that is already partly on disk: used when checks done
//! at the end of the message (Authentication-Results, DKIM-Signature, removal of forged
//! fields) change its header section before it is committed.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Write `dst` as: the first `keep` bytes of `src` (the envelope header), or `envelope`
/// in their place when given, then `head`, then `src` from `keep + skip` to its end, then
/// `trailer`; fsync it. `src` is left as it is.
pub(crate) fn splice_copy(
    src: &Path,
    dst: &Path,
    (keep, envelope): (u64, Option<&[u8]>),
    skip: u64,
    head: &[u8],
    trailer: &[u8],
) -> io::Result<File> {
    let mut from = File::open(src)?;
    let mut to = crate::safefs::create_new(dst)?;
    let result = (|| {
        match envelope {
            Some(e) => to.write_all(e)?,
            None => {
                io::copy(&mut (&mut from).take(keep), &mut to)?;
            }
        }
        to.write_all(head)?;
        from.seek(SeekFrom::Start(keep + skip))?;
        io::copy(&mut from, &mut to)?;
        to.write_all(trailer)?;
        to.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(dst);
        return Err(e);
    }
    Ok(to)
}

/// Read `len` bytes of `path` from `offset`.
pub(crate) fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut v = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use postern_smtp::address::{ReversePath, parse_mailbox};
    use postern_smtp::command::BodyType;

    use crate::{Envelope, QueueId, Recipient, Spool};

    fn envelope() -> Envelope {
        Envelope {
            id: QueueId::generate(),
            arrived: 1,
            client_ip: None,
            helo: "client.test".into(),
            sender: ReversePath::Null,
            recipients: vec![Recipient::new(parse_mailbox("a@b.test").unwrap())],
            body: BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            sender_tls: Default::default(),
        }
    }

    /// Small messages are edited in the write buffer, large ones copied once: both give
    /// the same complete, loadable file.
    #[tokio::test]
    async fn replace_head_in_buffer_and_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        for body_size in [100usize, 400 << 10] {
            let mut inc = spool.begin(envelope()).await.unwrap();
            let body = "x".repeat(body_size);
            let msg = format!("Received: r\r\nForged: f\r\nSubject: s\r\n\r\n{body}\r\n");
            for chunk in msg.as_bytes().chunks(1000) {
                inc.write(chunk).await.unwrap();
            }
            let content = inc.read_content(u64::MAX).await.unwrap();
            assert_eq!(content, msg.as_bytes());
            assert_eq!(inc.read_content(12).await.unwrap(), b"Received: r\r");
            inc.replace_head(24, b"Auth: a\r\nReceived: r\r\n".to_vec());
            let q = inc.commit().await.unwrap();
            let loaded = spool.load(&q.path).unwrap();
            let want = format!("Auth: a\r\nReceived: r\r\nSubject: s\r\n\r\n{body}\r\n");
            assert_eq!(loaded.read_body().unwrap(), want.as_bytes());
            assert_eq!(q.body_len, want.len() as u64);
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("incoming"))
                .unwrap()
                .count(),
            0
        );
    }

    /// `TLS-Required: No` is known only after the envelope header was written: it is
    /// rewritten at commit, in the buffer or by the one copy, with or without a new head.
    #[tokio::test]
    async fn envelope_rewritten_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Arc::new(Spool::open(dir.path()).unwrap());
        for (body_size, new_head) in [
            (100usize, false),
            (100, true),
            (400 << 10, false),
            (400 << 10, true),
        ] {
            let mut inc = spool.begin(envelope()).await.unwrap();
            let body = "x".repeat(body_size);
            let msg = format!("Received: r\r\nTLS-Required: No\r\n\r\n{body}\r\n");
            for chunk in msg.as_bytes().chunks(1000) {
                inc.write(chunk).await.unwrap();
            }
            inc.set_sender_tls(crate::SenderTls::TlsOptional);
            let want = if new_head {
                inc.replace_head(0, b"Auth: a\r\n".to_vec());
                format!("Auth: a\r\n{msg}")
            } else {
                msg.clone()
            };
            let q = inc.commit().await.unwrap();
            assert_eq!(q.envelope.sender_tls, crate::SenderTls::TlsOptional);
            let loaded = spool.load(&q.path).unwrap();
            assert_eq!(loaded.envelope.sender_tls, crate::SenderTls::TlsOptional);
            assert_eq!(loaded.body_offset, q.body_offset);
            assert_eq!(loaded.read_body().unwrap(), want.as_bytes());
            assert_eq!(q.body_len, want.len() as u64);
        }
    }
}
