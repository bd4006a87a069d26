//! The durable report store: `STATE_DIR/reports/events/YYYY-MM-DD.log`, one file per UTC
//! day, append-only.
//!
//! Each record is one line: `LLLLLLLL HHHHHHHHHHHHHHHH JSON\n`, the JSON's length and
//! its FNV-1a 64 hash in hexadecimal. A line whose length or hash does not match (the
//! torn last line of a crash, a damaged disk) is skipped on reading, and counted; the
//! lines around it are unaffected. Reopening a file whose last line is torn first ends
//! that line, so the next record starts clean.
//!
//! One writer thread owns the files: producers hand it records through a bounded
//! channel (never blocking the mail path; a full channel drops the record and counts
//! it), and it fsyncs at most once a second or every [`SYNC_EVERY`] records, and on
//! [`Store::flush`] and close. A crash loses at most the last second; it never corrupts
//! what was synced.
//!
//! The store is bounded by `[reports] max_store_mb`: when the files together are larger,
//! the oldest days are deleted; if today's file alone reaches the bound, today's further
//! records are dropped (and counted).

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::event::Event;

/// Records between fsyncs at most.
pub const SYNC_EVERY: usize = 256;
/// Time between fsyncs at most.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Records waiting for the writer at most; more are dropped.
const CHANNEL: usize = 8192;

enum Msg {
    Event(Box<Event>),
    Flush(mpsc::Sender<()>),
}

/// The store's writer: cheap to share, never blocks the caller of [`Store::record`].
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    tx: Mutex<Option<SyncSender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The events directory under the state directory.
pub fn events_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("reports").join("events")
}

impl Store {
    /// Open (creating) the store in `dir`, bounded to `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Arc<Store>> {
        if let Some(parent) = dir.parent() {
            postern_queue::safefs::create_dir(parent)?;
        }
        postern_queue::safefs::create_dir(dir)?;
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let mut w = Writer {
            dir: dir.to_path_buf(),
            max_bytes,
            current: None,
            pending: 0,
            full_day: None,
        };
        let thread = std::thread::Builder::new()
            .name("postern-reports-store".into())
            .spawn(move || w.run(rx))?;
        Ok(Arc::new(Store {
            dir: dir.to_path_buf(),
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hand a record to the writer; dropped (and counted) when the writer is behind.
    pub fn record(&self, e: Event) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else { return };
        match tx.try_send(Msg::Event(Box::new(e))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => dropped("backlog"),
            Err(TrySendError::Disconnected(_)) => dropped("closed"),
        }
    }

    /// Wait until everything recorded so far is written and fsynced.
    pub fn flush(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else { return };
        let (ack, done) = mpsc::channel();
        // A full channel: wait for room, this is the operator's or the shutdown's call.
        if tx.send(Msg::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(30));
        }
    }

    /// Flush and stop the writer; later records are dropped.
    pub fn close(&self) {
        self.flush();
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

fn dropped(why: &str) {
    postern_metrics::inc("postern_reports_store_dropped_total", &[("reason", why)]);
}

/// The Unix time of 00:00 UTC of `day` (`YYYY-MM-DD`); `None` if it is not a day.
pub fn day_start(day: &str) -> Option<u64> {
    let mut p = day.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (p.next()??, p.next()??, p.next()??);
    if p.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    u64::try_from(date.midnight().assume_utc().unix_timestamp()).ok()
}

/// `YYYY-MM-DD` of Unix time `t`, UTC.
pub fn day_of(t: u64) -> String {
    let Some(d) = i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    else {
        return "9999-12-31".into();
    };
    let d = d.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// One framed line for `e`.
pub fn frame(e: &Event) -> Vec<u8> {
    let json = serde_json::to_vec(e).unwrap_or_default();
    let mut line = format!("{:08x} {:016x} ", json.len(), fnv(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// The record of one line; `None` when torn or damaged.
pub fn unframe(line: &[u8]) -> Option<Event> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.len() < 27 || line[8] != b' ' || line[25] != b' ' {
        return None;
    }
    let len = usize::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let hash = u64::from_str_radix(std::str::from_utf8(&line[9..25]).ok()?, 16).ok()?;
    let json = &line[26..];
    if json.len() != len || fnv(json) != hash {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// The day files of `dir`, oldest first: (day, path, size).
pub fn days(dir: &Path) -> io::Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(day) = name.strip_suffix(".log") else {
            continue;
        };
        if day.len() != 10 || !day.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            continue;
        }
        let meta = entry.metadata()?;
        if meta.is_file() {
            out.push((day.to_string(), entry.path(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct Records {
    pub events: Vec<Event>,
    /// Lines skipped as torn or damaged.
    pub skipped: usize,
}

/// Every record with `since <= t < until`, from the files of `dir`.
pub fn read(dir: &Path, since: u64, until: u64) -> io::Result<Records> {
    let (first, last) = (day_of(since), day_of(until.saturating_sub(1)));
    let mut out = Records::default();
    for (day, path, _) in days(dir)? {
        if day < first || day > last {
            continue;
        }
        // `postern reports` and `tls-report` may run as root: no links, no FIFOs.
        let f = match postern_queue::safefs::open_regular(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut r = BufReader::new(f);
        let mut line = Vec::new();
        loop {
            line.clear();
            // A line longer than any record we write is damage: skip it whole.
            let n = (&mut r).take(1 << 20).read_until(b'\n', &mut line)?;
            if n == 0 {
                break;
            }
            match unframe(&line) {
                Some(e) if e.time() >= since && e.time() < until => out.events.push(e),
                Some(_) => {}
                None => out.skipped += 1,
            }
        }
    }
    Ok(out)
}

struct Writer {
    dir: PathBuf,
    max_bytes: u64,
    /// Today's open file: (day, file, its size).
    current: Option<(String, File, u64)>,
    pending: usize,
    /// The day whose records are dropped: the store is full with it alone.
    full_day: Option<String>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut since_sync = Instant::now();
        loop {
            let wait = if self.pending > 0 {
                SYNC_INTERVAL.saturating_sub(since_sync.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            match rx.recv_timeout(wait) {
                Ok(Msg::Event(e)) => {
                    self.write(&e);
                    if self.pending >= SYNC_EVERY || since_sync.elapsed() >= SYNC_INTERVAL {
                        self.sync();
                        since_sync = Instant::now();
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    self.sync();
                    since_sync = Instant::now();
                    let _ = ack.send(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.sync();
                    since_sync = Instant::now();
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.sync();
                    return;
                }
            }
        }
    }

    fn sync(&mut self) {
        if self.pending == 0 {
            return;
        }
        if let Some((day, f, _)) = &self.current
            && let Err(e) = f.sync_data()
        {
            warn!("report store: cannot fsync {day}.log: {e}");
        }
        self.pending = 0;
        // At most once per fsync: keep the store within its bound.
        if let Some(day) = self.current.as_ref().map(|c| c.0.clone()) {
            self.bound(&day);
        }
    }

    fn write(&mut self, e: &Event) {
        let day = day_of(e.time());
        if self.full_day.as_deref() == Some(day.as_str()) {
            dropped("full");
            return;
        }
        if self.current.as_ref().is_none_or(|(d, _, _)| *d != day) {
            self.sync();
            self.current = None;
            match self.open_day(&day) {
                Ok(c) => self.current = Some(c),
                Err(err) => {
                    warn!(
                        "report store: cannot open {day}.log in {}: {err}",
                        self.dir.display()
                    );
                    dropped("io");
                    return;
                }
            }
            self.bound(&day);
        }
        let line = frame(e);
        let Some((_, f, size)) = self.current.as_mut() else {
            return;
        };
        match f.write_all(&line) {
            Ok(()) => {
                *size += line.len() as u64;
                self.pending += 1;
            }
            Err(err) => {
                warn!("report store: cannot write {day}.log: {err}");
                dropped("io");
            }
        }
    }

    /// Open (creating) the file of `day` for appending; end a torn last line.
    fn open_day(&self, day: &str) -> io::Result<(String, File, u64)> {
        let path = self.dir.join(format!("{day}.log"));
        let mut f = postern_queue::safefs::open_owned(&path, true)?;
        let mut size = f.seek(SeekFrom::End(0))?;
        if size > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut last)?;
            f.seek(SeekFrom::End(0))?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
                size += 1;
            }
        }
        Ok((day.to_string(), f, size))
    }

    /// Delete the oldest days while the store is over its bound; if `today` alone is,
    /// stop recording for today.
    fn bound(&mut self, today: &str) {
        let Ok(mut all) = days(&self.dir) else {
            return;
        };
        let mut total: u64 = all.iter().map(|(_, _, s)| s).sum();
        while total > self.max_bytes {
            let Some((day, path, size)) = all.first().cloned() else {
                break;
            };
            if day.as_str() >= today {
                warn!(
                    "report store: {today}.log alone reached [reports] max_store_mb: today's further records are dropped"
                );
                self.full_day = Some(today.to_string());
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => {
                    warn!("report store over [reports] max_store_mb: deleted the records of {day}")
                }
                Err(e) => {
                    warn!("report store: cannot delete {}: {e}", path.display());
                    break;
                }
            }
            total -= size;
            all.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event::Inbound;

    fn ev(t: u64, n: u8) -> Event {
        Event::Inbound(Inbound {
            t,
            ip: std::net::IpAddr::from([192, 0, 2, n]),
            helo: format!("client{n}.example"),
            sender_domain: Some("example.org".into()),
            tls_version: Some("TLSv1.3".into()),
            cipher: Some("TLS13_AES_256_GCM_SHA384".into()),
            verified: false,
        })
    }

    const DAY: u64 = 86_400;
    const T0: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

    #[test]
    fn day_names_are_utc_dates() {
        assert_eq!(day_of(T0), "2026-01-01");
        assert_eq!(day_of(T0 + DAY - 1), "2026-01-01");
        assert_eq!(day_of(T0 + DAY), "2026-01-02");
        assert_eq!(day_of(u64::MAX), "9999-12-31");
    }

    #[test]
    fn frames_round_trip_and_damage_is_detected() {
        let line = frame(&ev(T0, 1));
        assert_eq!(unframe(&line), Some(ev(T0, 1)));
        assert_eq!(unframe(&line[..line.len() - 5]), None);
        let mut flipped = line.clone();
        let i = flipped.len() - 10;
        flipped[i] ^= 0x01;
        assert_eq!(unframe(&flipped), None);
        assert_eq!(unframe(b"garbage\n"), None);
    }

    #[test]
    fn records_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("reports/events");
        let s = Store::open(&d, 1 << 30).unwrap();
        for n in 0..10 {
            s.record(ev(T0 + u64::from(n), n));
        }
        s.close();
        drop(s);
        let s = Store::open(&d, 1 << 30).unwrap();
        s.record(ev(T0 + 100, 100));
        s.record(ev(T0 + DAY, 101));
        s.flush();
        let r = read(&d, T0, T0 + 2 * DAY).unwrap();
        assert_eq!(r.events.len(), 12);
        assert_eq!(r.skipped, 0);
        assert_eq!(r.events[10], ev(T0 + 100, 100));
        // The window is honoured.
        assert_eq!(read(&d, T0 + DAY, T0 + 2 * DAY).unwrap().events.len(), 1);
        assert_eq!(days(&d).unwrap().len(), 2);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("events");
        let s = Store::open(&d, 1 << 30).unwrap();
        s.record(ev(T0, 1));
        s.record(ev(T0 + 1, 2));
        s.close();
        drop(s);
        // A crash in the middle of the third record.
        let path = d.join("2026-01-01.log");
        let third = frame(&ev(T0 + 2, 3));
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&third[..third.len() / 2]).unwrap();
        drop(f);
        let r = read(&d, T0, T0 + DAY).unwrap();
        assert_eq!((r.events.len(), r.skipped), (2, 1));
        // After a restart new records start on a line of their own.
        let s = Store::open(&d, 1 << 30).unwrap();
        s.record(ev(T0 + 3, 4));
        s.flush();
        let r = read(&d, T0, T0 + DAY).unwrap();
        assert_eq!(r.skipped, 1);
        assert_eq!(r.events, vec![ev(T0, 1), ev(T0 + 1, 2), ev(T0 + 3, 4)]);
    }

    #[test]
    fn the_store_is_bounded_oldest_days_first() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("events");
        let line = frame(&ev(T0, 1)).len() as u64;
        // Room for about 25 records.
        let s = Store::open(&d, line * 25).unwrap();
        for day in 0..5u64 {
            for n in 0..10u8 {
                s.record(ev(T0 + day * DAY + u64::from(n), n));
            }
            s.flush();
        }
        s.flush();
        let left: Vec<String> = days(&d).unwrap().into_iter().map(|(d, _, _)| d).collect();
        assert_eq!(left, vec!["2026-01-04", "2026-01-05"]);
        let total: u64 = days(&d).unwrap().iter().map(|(_, _, s)| s).sum();
        assert!(total <= line * 25, "{total}");
        // Today alone over the bound: further records for today are dropped.
        for n in 0..30u8 {
            s.record(ev(T0 + 4 * DAY + 100 + u64::from(n), n));
            s.flush();
        }
        let r = read(&d, T0, T0 + 5 * DAY).unwrap();
        assert!(r.events.len() < 40, "{}", r.events.len());
        let total: u64 = days(&d).unwrap().iter().map(|(_, _, s)| s).sum();
        assert!(total <= line * 26, "{total}");
    }
}
