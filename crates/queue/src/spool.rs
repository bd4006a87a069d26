//! Files: writing new messages durably, reading them back, updating their state.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{error, warn};

use crate::error::{LoadError, io_step};
use crate::record::{self, END, Envelope, RcptState};
use crate::safefs;
use crate::scheduler::Notify;
use crate::spare::Spares;
use crate::{QueueId, RcptStatus};

/// Largest envelope header read back (many recipients make long headers).
const MAX_HEADER: u64 = 16 << 20;
/// Bytes buffered in memory per incoming message before they are written out.
const WRITE_BUFFER: usize = 128 << 10;

/// The queue directories.
#[derive(Debug)]
pub struct Spool {
    incoming: PathBuf,
    active: PathBuf,
    /// Messages the operator put on hold (`postern queue hold`): never delivered.
    hold: PathBuf,
    failed: PathBuf,
    corrupt: PathBuf,
    /// Files of delivered messages, kept for the next ones (see `spare.rs`).
    spares: Spares,
    /// Group commit of `active/` directory fsyncs (see [`DirSync`]).
    active_sync: DirSync,
    /// Unit tests make directory fsyncs fail with this.
    #[cfg(test)]
    fail_dir_sync: std::sync::atomic::AtomicBool,
}

/// Directory fsyncs shared by concurrent commits. A commit renames its file into the
/// directory, then asks for a sync: if a sync that started after its rename completes,
/// that covers it; one caller at a time runs the fsync for everyone who asked before it
/// started. Under load, messages that finish together cost one directory fsync.
#[derive(Debug, Default)]
struct DirSync {
    state: std::sync::Mutex<DirSyncState>,
    done_cv: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct DirSyncState {
    requested: u64,
    done: u64,
    running: bool,
}

impl DirSync {
    /// Make every rename into `dir` that happened before this call durable.
    fn sync(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.requested += 1;
        let mine = st.requested;
        loop {
            if st.done >= mine {
                return Ok(());
            }
            if !st.running {
                st.running = true;
                let target = st.requested;
                drop(st);
                let r = sync_dir(dir);
                st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.running = false;
                if r.is_ok() {
                    st.done = st.done.max(target);
                }
                self.done_cv.notify_all();
                r?;
                continue;
            }
            st = self.done_cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A message in the queue, with where its content lies in the file.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub envelope: Envelope,
    pub path: PathBuf,
    pub body_offset: u64,
    pub body_len: u64,
    pub state: Vec<RcptState>,
    /// When the one delay warning for this message was queued.
    pub delay_warned: Option<u64>,
}

/// Where [`Spool::finish`] put a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// Deleted: every recipient delivered, or reported to the sender as failed (or the
    /// sender asked not to be told).
    Removed,
    /// Moved to `failed/`: a failed recipient could not be reported to the sender.
    KeptInFailed,
}

impl QueuedMessage {
    /// A blocking reader over the message content (Received header first).
    pub fn open_body(&self) -> io::Result<io::Take<BufReader<File>>> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.body_offset))?;
        Ok(BufReader::new(f).take(self.body_len))
    }

    /// The whole message content, for small messages and tests.
    pub fn read_body(&self) -> io::Result<Vec<u8>> {
        let mut v = Vec::with_capacity(self.body_len as usize);
        self.open_body()?.read_to_end(&mut v)?;
        Ok(v)
    }

    pub fn pending(&self) -> Vec<usize> {
        self.state
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.status.is_final())
            .map(|(i, _)| i)
            .collect()
    }

    pub(crate) fn state_path(&self) -> PathBuf {
        self.path.with_extension("state")
    }
}

impl Spool {
    /// Open (creating if needed) the spool under `dir`, and clear `incoming/` of messages
    /// whose reception never completed (they were never acknowledged).
    pub fn open(dir: &Path) -> io::Result<Spool> {
        let (incoming, active, hold, failed, corrupt) = (
            dir.join("incoming"),
            dir.join("active"),
            dir.join("hold"),
            dir.join("failed"),
            dir.join("corrupt"),
        );
        for d in [&incoming, &active, &hold, &failed, &corrupt] {
            safefs::create_dir(d).map_err(|e| annotate(e, d))?;
        }
        let spare = dir.join("spare");
        let s = Spool {
            incoming,
            active,
            hold,
            failed,
            corrupt,
            spares: Spares::open(spare.clone()).map_err(|e| annotate(e, &spare))?,
            active_sync: DirSync::default(),
            #[cfg(test)]
            fail_dir_sync: Default::default(),
        };
        for entry in fs::read_dir(&s.incoming)? {
            let p = entry?.path();
            warn!(file = %p.display(), "removing a message whose reception never completed (never acknowledged)");
            let _ = fs::remove_file(&p);
        }
        Ok(s)
    }

    pub fn active_dir(&self) -> &Path {
        &self.active
    }
    pub fn hold_dir(&self) -> &Path {
        &self.hold
    }
    pub fn failed_dir(&self) -> &Path {
        &self.failed
    }
    pub fn corrupt_dir(&self) -> &Path {
        &self.corrupt
    }

    /// Start receiving a message: creates `incoming/ID` with the envelope header.
    pub async fn begin(self: &Arc<Self>, envelope: Envelope) -> io::Result<Incoming> {
        let path = self.incoming.join(envelope.id.to_string());
        let header = envelope.header().into_bytes();
        // The file is created at the first write to disk: a message that fits the write
        // buffer is created, written, fsynced and renamed in one trip to the blocking
        // pool at commit.
        Ok(Incoming {
            spool: self.clone(),
            body_offset: header.len() as u64,
            buf: header,
            envelope,
            path,
            file: None,
            created: false,
            body_len: 0,
            committed: false,
            hold: false,
            flushed: 0,
            new_head: None,
            envelope_changed: false,
            notify: None,
        })
    }

    /// After a rename into `dir`: the shared (group) fsync for `active/`, a plain one for
    /// `hold/`.
    fn sync_dest(&self, dir: &Path, hold: bool) -> io::Result<()> {
        #[cfg(test)]
        if self.fail_dir_sync.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(io::Error::other("injected directory fsync failure"));
        }
        if hold {
            sync_dir(dir)
        } else {
            self.active_sync.sync(dir)
        }
    }

    /// Read every message in `active/`. Damaged files are moved to `corrupt/`.
    pub fn load_all(&self) -> io::Result<Vec<QueuedMessage>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.active)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string();
            let Some((stem, ext)) = name.split_once('.') else {
                warn!(file = %path.display(), "ignoring unexpected file in the queue");
                continue;
            };
            match ext {
                "msg" => match self.load(&path) {
                    Ok(m) => out.push(m),
                    Err(why) => self.quarantine(&path, &why.to_string()),
                },
                "state" | "state.tmp" => {
                    if !self.active.join(format!("{stem}.msg")).exists() {
                        let _ = fs::remove_file(&path);
                    }
                }
                _ => warn!(file = %path.display(), "ignoring unexpected file in the queue"),
            }
        }
        out.sort_by_key(|m| m.envelope.id);
        Ok(out)
    }

    /// Read `active/ID.msg` back for the scheduler: `None` when it is no longer there
    /// (delivered, deleted, held) or was damaged (then moved to `corrupt/`); an error
    /// when it could not be read now (it is tried again later).
    pub(crate) fn load_active(&self, id: QueueId) -> io::Result<Option<QueuedMessage>> {
        let path = self.active.join(format!("{id}.msg"));
        match self.load(&path) {
            Ok(m) => Ok(Some(m)),
            Err(LoadError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(LoadError::Io { what, source }) => {
                Err(io::Error::new(source.kind(), format!("{what}: {source}")))
            }
            Err(why) => {
                self.quarantine(&path, &why.to_string());
                Ok(None)
            }
        }
    }

    /// How many messages `active/` holds (file names only).
    pub fn count_active(&self) -> io::Result<usize> {
        let mut n = 0;
        for e in fs::read_dir(&self.active)? {
            if e?.file_name().to_str().is_some_and(|n| n.ends_with(".msg")) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Read one `.msg` file back, checking that it is complete.
    pub fn load(&self, path: &Path) -> Result<QueuedMessage, LoadError> {
        let f = File::open(path).map_err(io_step("cannot open"))?;
        let len = f.metadata().map_err(io_step("cannot stat"))?.len();
        let mut r = BufReader::new(f);
        let mut header = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut r)
                .take(MAX_HEADER)
                .read_until(b'\n', &mut line)
                .map_err(io_step("read error"))?;
            if n == 0 || !line.ends_with(b"\n") {
                return Err("envelope header is truncated".into());
            }
            if line == b"\n" {
                break;
            }
            header.extend_from_slice(&line);
            if header.len() as u64 > MAX_HEADER {
                return Err("envelope header is too long".into());
            }
        }
        let body_offset = header.len() as u64 + 1;
        let text = String::from_utf8(header)
            .map_err(|_| LoadError::from("envelope header is not UTF-8"))?;
        let envelope = Envelope::parse_header(&text)?;
        let mut f = r.into_inner();
        let tail_len = len.saturating_sub(body_offset).min(64);
        f.seek(SeekFrom::Start(len - tail_len))
            .map_err(io_step("seek"))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).map_err(io_step("read error"))?;
        let body_len = parse_trailer(&tail, len - body_offset)
            .ok_or("end marker missing or wrong: the file is incomplete")?;
        let mut msg = QueuedMessage {
            state: vec![RcptState::new(); envelope.recipients.len()],
            envelope,
            path: path.to_path_buf(),
            body_offset,
            body_len,
            delay_warned: None,
        };
        let state_path = msg.state_path();
        match fs::read_to_string(&state_path) {
            Ok(s) => match record::parse_state(&s, msg.state.len()) {
                Ok(st) => {
                    msg.state = st.rcpts;
                    msg.delay_warned = st.delay_warned;
                }
                Err(e) => warn!(
                    file = %state_path.display(),
                    "unreadable delivery state ({e}); every recipient not known to be delivered will be tried again"
                ),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_step("cannot read state file")(e)),
        }
        Ok(msg)
    }

    /// Persist a message's recipient state atomically.
    pub fn write_state(&self, msg: &QueuedMessage) -> io::Result<()> {
        let path = msg.state_path();
        let tmp = path.with_extension("state.tmp");
        let text = record::format_state(&msg.state, msg.delay_warned);
        safefs::replace_file(&tmp, &path, text.as_bytes())
    }

    /// All recipients are final: remove the message, or move it to `failed/` when a
    /// failed recipient was never reported to the sender (a null sender, or a bounce
    /// that could not be queued), so that the operator still has it.
    pub fn finish(&self, msg: &QueuedMessage) -> io::Result<Finished> {
        let keep = msg
            .state
            .iter()
            .any(|s| s.status == RcptStatus::Failed && !s.notified);
        let state = msg.state_path();
        if keep {
            let name = msg.envelope.id.to_string();
            let dst_state = self.failed.join(format!("{name}.state"));
            let tmp = self.failed.join(format!("{name}.state.tmp"));
            let text = record::format_state(&msg.state, msg.delay_warned);
            safefs::replace_file(&tmp, &dst_state, text.as_bytes())?;
            fs::rename(&msg.path, self.failed.join(format!("{name}.msg")))?;
            sync_dir(&self.failed)?;
        } else {
            self.spares.retire(&msg.path)?;
        }
        match fs::remove_file(&state) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(if keep {
                Finished::KeptInFailed
            } else {
                Finished::Removed
            }),
        }
    }

    fn quarantine(&self, path: &Path, why: &str) {
        let name = path
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        let dst = self.corrupt.join(&name);
        error!(
            file = %path.display(),
            moved_to = %dst.display(),
            "corrupt queue file moved aside: {why}; inspect it and re-inject by hand if it holds mail"
        );
        if let Err(e) = fs::rename(path, &dst) {
            error!(file = %path.display(), "could not move corrupt queue file: {e}");
        }
        let state = path.with_extension("state");
        if state.exists() {
            let _ = fs::rename(&state, dst.with_extension("state"));
        }
    }
}

fn parse_trailer(tail: &[u8], after_header: u64) -> Option<u64> {
    let t = tail.strip_suffix(b"\n")?;
    let start = t.iter().rposition(|&b| b == b'\n').map(|i| i + 1)?;
    let line = std::str::from_utf8(&t[start..]).ok()?;
    let n: u64 = line.strip_prefix(END)?.parse().ok()?;
    let trailer_len = (t.len() - start + 1) as u64;
    (after_header.checked_sub(trailer_len)? == n).then_some(n)
}

/// A message being received. Dropping it without [`Incoming::commit`] deletes it.
#[derive(Debug)]
pub struct Incoming {
    spool: Arc<Spool>,
    envelope: Envelope,
    path: PathBuf,
    file: Option<File>,
    /// The file exists on disk (`file` is `None` afterwards only after a failure).
    created: bool,
    buf: Vec<u8>,
    body_offset: u64,
    body_len: u64,
    committed: bool,
    /// Commit into `hold/` instead of `active/` (quarantine).
    hold: bool,
    /// Bytes of the file already written out (envelope header first).
    flushed: u64,
    /// Set by [`Incoming::replace_head`]: content bytes to replace, and their replacement.
    new_head: Option<(u64, Vec<u8>)>,
    /// The envelope changed after its header was put in the file
    /// ([`Incoming::set_sender_tls`]): the header is rewritten at commit.
    envelope_changed: bool,
    pub(crate) notify: Option<Notify>,
}

impl Incoming {
    pub fn id(&self) -> QueueId {
        self.envelope.id
    }

    /// Bytes of message content written so far.
    pub fn len(&self) -> u64 {
        self.body_len
    }

    pub fn is_empty(&self) -> bool {
        self.body_len == 0
    }

    /// The first `max` bytes of the message content received so far (for checks that
    /// need the message, such as DKIM). Buffered content is not forced to disk.
    pub async fn read_content(&mut self, max: u64) -> io::Result<Vec<u8>> {
        let want = self.body_len.min(max);
        let on_disk = self.flushed.saturating_sub(self.body_offset).min(want);
        let mut v = if on_disk > 0 {
            let (p, off) = (self.path.clone(), self.body_offset);
            blocking(move || crate::splice::read_range(&p, off, on_disk)).await?
        } else {
            Vec::new()
        };
        // `buf` holds what follows the flushed part (the envelope header too, if nothing
        // was flushed yet).
        let skip = self.body_offset.saturating_sub(self.flushed) as usize;
        let rest = (want - on_disk) as usize;
        v.extend_from_slice(
            &self.buf[skip.min(self.buf.len())..][..rest.min(self.buf.len().saturating_sub(skip))],
        );
        Ok(v)
    }

    /// At commit, replace the first `old_len` bytes of the content with `head` (header
    /// fields added or removed by checks at the end of the message). The content stays
    /// streamed: a message still in the write buffer is edited there, a larger one is
    /// copied once into a new file.
    pub fn replace_head(&mut self, old_len: u64, head: Vec<u8>) {
        self.new_head = Some((old_len.min(self.body_len), head));
    }

    /// Record what the sender asked of TLS on the way (RFC 8689). `TLS-Required: No` is
    /// only known once the header section has arrived, after the envelope header was
    /// put in the file: the header is rewritten at commit, in the write buffer for a
    /// small message, by the one copy [`Incoming::replace_head`] also uses otherwise.
    pub fn set_sender_tls(&mut self, tls: crate::SenderTls) {
        if self.envelope.sender_tls != tls {
            self.envelope.sender_tls = tls;
            self.envelope_changed = true;
        }
    }

    /// Append message content.
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        self.body_len += data.len() as u64;
        if self.buf.len() >= WRITE_BUFFER {
            self.flush(false).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, finish: bool) -> io::Result<()> {
        let file = self.file.take();
        if file.is_none() && self.created {
            return Err(io::Error::other("spool file already failed"));
        }
        self.created = true;
        let mut buf = std::mem::take(&mut self.buf);
        let (incoming, active) = (self.path.clone(), self.destination());
        let spool = self.spool.clone();
        let hold = self.hold;
        let id = self.envelope.id;
        if finish {
            buf.extend_from_slice(format!("{END}{}\n", self.body_len).as_bytes());
        }
        self.flushed += buf.len() as u64;
        let (file, buf) = blocking(move || {
            let mut file = match file {
                Some(f) => f,
                None => spool
                    .spares
                    .take(&incoming)
                    .map_err(|e| annotate(e, &incoming))?,
            };
            file.write_all(&buf)?;
            if finish {
                // Data and the size needed to read it back: what fdatasync guarantees.
                file.sync_data()?;
                let dst = active.join(format!("{id}.msg"));
                fs::rename(&incoming, &dst)?;
                if let Err(e) = spool.sync_dest(&active, hold) {
                    // Not durable, so not acknowledged: the client is told 452 and will
                    // send again. Take the file back out of the queue, or it would be
                    // delivered as well (a duplicate).
                    undo_rename(&dst, &incoming);
                    return Err(e);
                }
            }
            Ok((file, buf))
        })
        .await?;
        self.file = Some(file);
        self.buf = buf;
        self.buf.clear();
        Ok(())
    }

    /// Make the message durable: write the end marker, fsync the file, move it into
    /// `active/`, fsync the directory. Only after this returns `Ok` may the client be
    /// told 250.
    pub async fn commit(mut self) -> io::Result<QueuedMessage> {
        if self.new_head.is_some() || self.envelope_changed {
            let (old_len, head) = self.new_head.take().unwrap_or_default();
            self.apply_head(old_len, head).await?;
        } else {
            self.flush(true).await?;
        }
        self.committed = true;
        let msg = QueuedMessage {
            state: vec![RcptState::new(); self.envelope.recipients.len()],
            envelope: self.envelope.clone(),
            path: self.destination().join(format!("{}.msg", self.envelope.id)),
            body_offset: self.body_offset,
            body_len: self.body_len,
            delay_warned: None,
        };
        // A held message waits for the operator, not for the scheduler.
        if !self.hold {
            match &self.notify {
                Some(n) => n.queued(msg.clone()),
                // Queued with no scheduler running (an operator command, a tool): the
                // next start must rebuild its schedule to see it.
                None => crate::index::invalidate(&self.spool.active),
            }
        }
        Ok(msg)
    }
}

impl Incoming {
    /// Commit into `hold/` (quarantine): kept until an operator releases or deletes it.
    pub fn hold_on_commit(&mut self) {
        self.hold = true;
    }

    fn destination(&self) -> PathBuf {
        if self.hold {
            self.spool.hold.clone()
        } else {
            self.spool.active.clone()
        }
    }

    /// Commit with the top of the content replaced (see [`Incoming::replace_head`]) and
    /// the envelope header rewritten if it changed ([`Incoming::set_sender_tls`]).
    async fn apply_head(&mut self, old_len: u64, head: Vec<u8>) -> io::Result<()> {
        let new_len = self.body_len - old_len + head.len() as u64;
        let envelope = self
            .envelope_changed
            .then(|| self.envelope.header().into_bytes());
        if self.flushed == 0 {
            if let Some(e) = envelope {
                let old = (self.body_offset as usize).min(self.buf.len());
                self.body_offset = e.len() as u64;
                self.buf.splice(..old, e);
            }
            let start = self.body_offset as usize;
            self.buf.splice(start..start + old_len as usize, head);
            self.body_len = new_len;
            return self.flush(true).await;
        }
        self.flush(false).await?;
        self.body_len = new_len;
        let trailer = format!("{END}{new_len}\n").into_bytes();
        let (src, keep, id) = (self.path.clone(), self.body_offset, self.envelope.id);
        let (tmp, active) = (self.path.with_extension("head"), self.destination());
        let (spool, hold) = (self.spool.clone(), self.hold);
        if let Some(e) = &envelope {
            self.body_offset = e.len() as u64;
        }
        blocking(move || {
            crate::splice::splice_copy(
                &src,
                &tmp,
                (keep, envelope.as_deref()),
                old_len,
                &head,
                &trailer,
            )?;
            let dst = active.join(format!("{id}.msg"));
            fs::rename(&tmp, &dst)?;
            if let Err(e) = spool.sync_dest(&active, hold) {
                undo_rename(&dst, &tmp);
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            let _ = fs::remove_file(&src);
            Ok(())
        })
        .await
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A message renamed into the queue whose directory fsync failed: move it back out, so
/// that the queue does not deliver what the client was told to send again.
fn undo_rename(queued: &Path, back_to: &Path) {
    if let Err(e) = fs::rename(queued, back_to) {
        error!(
            file = %queued.display(),
            "the directory fsync failed and the message could not be taken back out of the queue ({e}); it may be delivered twice"
        );
        let _ = fs::remove_file(queued);
    }
}

fn annotate(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Run blocking file work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("spool task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_smtp::address::{ReversePath, parse_mailbox};
    use std::sync::atomic::Ordering;

    fn envelope() -> Envelope {
        Envelope {
            id: crate::QueueId::generate(),
            arrived: crate::unix_now(),
            client_ip: None,
            helo: "client.test".into(),
            sender: ReversePath::Address(parse_mailbox("alice@sender.test").unwrap()),
            recipients: vec![parse_mailbox("bob@local.test").unwrap().into()],
            body: postern_smtp::command::BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            sender_tls: Default::default(),
        }
    }

    /// Regression (#11, item 12): a commit whose directory fsync fails answers 452, and
    /// must not leave the message queued as well (it would be delivered twice).
    #[tokio::test]
    async fn failed_directory_fsync_leaves_nothing_queued() {
        for (replace_head, size) in [(false, 10), (true, 10), (true, WRITE_BUFFER * 2)] {
            let dir = tempfile::tempdir().unwrap();
            let spool = Arc::new(Spool::open(dir.path()).unwrap());
            let mut inc = spool.begin(envelope()).await.unwrap();
            inc.write(b"Subject: x\r\n\r\n").await.unwrap();
            inc.write(&vec![b'x'; size]).await.unwrap();
            if replace_head {
                inc.replace_head(0, b"X-Check: 1\r\n".to_vec());
            }
            spool.fail_dir_sync.store(true, Ordering::SeqCst);
            assert!(inc.commit().await.is_err(), "the commit must fail");
            assert_eq!(fs::read_dir(spool.active_dir()).unwrap().count(), 0);
            assert_eq!(
                fs::read_dir(dir.path().join("incoming")).unwrap().count(),
                0
            );
        }
    }
}
