//! Sending: once per UTC day (`[reports] send_hour` plus jitter; soon after a start
//! that missed it, see [`plan`]) the previous day's
//! TLS-RPT reports are built from the store and sent to the `rua` destinations of each
//! policy domain's `_smtp._tls` record: `mailto:` ones get report mail, DKIM-signed with
//! the `[[auth.dkim_sign]]` key of the From domain and queued as our own report mail (the
//! envelope's HELO is [`REPORT_MAIL_HELO`], so their deliveries are never counted);
//! `https:` ones get an HTTPS POST ([`Poster`]).
//!
//! `STATE_DIR/reports/sent.log` records every report queued (`DAY REPORT-ID ADDRESS`):
//! a report is never queued twice for one address, and the daily and per-destination
//! caps count from it, so a restart changes nothing. `postern reports send-now` asks
//! the daemon through the file `STATE_DIR/reports/send-now` ([`crate::cli`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_queue::{Envelope, Queue, QueueId, Recipient, SenderTls};
use postern_relay::outbound::observe::REPORT_MAIL_HELO;
use postern_smtp::address::{ReversePath, parse_mailbox};
use postern_smtp::command::BodyType;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::ReportsConfig;
use crate::mail::{ReportMail, compose};
use crate::store::{day_of, events_dir, read};
use crate::tlsrpt::{Rua, Submitter, build, rua};

/// The signing hook (`postern_auth::Auth::report_hook`).
pub type Sign = Option<postern_auth::sign::ReportSign>;

const DAY: u64 = 86_400;

/// Most `https:` destinations posted to per policy domain and report: each POST may take
/// up to a minute, and the record is the other side's to write.
pub const MAX_HTTPS_DESTINATIONS: usize = 2;

/// What sending needs.
#[derive(Clone)]
pub struct Sender {
    pub cfg: ReportsConfig,
    pub state_dir: PathBuf,
    pub hostname: String,
    pub queue: Queue,
    pub dns: postern_dns::Resolver,
    pub sign: Sign,
    /// For `rua=https:` destinations: `None` leaves them out (with a line saying so).
    pub poster: Option<Poster>,
}

/// HTTPS POST of TLS-RPT reports (RFC 8460 §5.4), with the trust anchors of outbound
/// `verify` (`[outbound] ca`, or the system store), read at each POST.
#[derive(Clone)]
pub struct Poster {
    pub fetcher: postern_sts::fetch::Fetcher,
    pub roots: postern_sts::lookup::Roots,
}

impl std::fmt::Debug for Poster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poster").finish_non_exhaustive()
    }
}

impl Poster {
    /// POST the gzipped report; the HTTP status on success.
    pub async fn post(&self, url: &str, json: &str) -> Result<u16, String> {
        let gz = crate::mail::gzip(json.as_bytes()).map_err(|e| e.to_string())?;
        self.fetcher
            .post(url, "application/tlsrpt+gzip", gz, (self.roots)())
            .await
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
    }
}

/// The trigger file of `postern reports send-now`, and its answer.
pub fn trigger_path(state_dir: &Path) -> PathBuf {
    state_dir.join("reports").join("send-now")
}
pub fn answer_path(state_dir: &Path) -> PathBuf {
    state_dir.join("reports").join("send-now.done")
}

/// The day (`YYYY-MM-DD`) whose reports the last completed daily run sent.
fn daily_marker_path(state_dir: &Path) -> PathBuf {
    state_dir.join("reports").join("daily-run")
}

fn ledger_path(state_dir: &Path) -> PathBuf {
    state_dir.join("reports").join("sent.log")
}

impl Sender {
    pub fn submitter(&self) -> Submitter {
        self.cfg.submitter(&self.hostname)
    }

    /// Build and queue the TLS-RPT reports for `[begin, end)`; one line per domain says
    /// what happened.
    pub async fn send_tlsrpt(&self, begin: u64, end: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let events = match read(&events_dir(&self.state_dir), begin, end) {
            Ok(r) => r.events,
            Err(e) => {
                warn!("reports: cannot read the store: {e}");
                return vec![format!("cannot read the store: {e}")];
            }
        };
        let who = self.submitter();
        let from = self.cfg.from_address(&self.hostname);
        let now = postern_queue::unix_now();
        let today = day_of(now);
        let mut ledger = std::fs::read_to_string(ledger_path(&self.state_dir)).unwrap_or_default();
        for report in build(&events, begin, end, &who) {
            let domain = &report.policy_domain;
            let name = format!("_smtp._tls.{domain}");
            let rua: Vec<Rua> = match self.dns.txt(&name).await {
                Ok(a) => a
                    .records
                    .iter()
                    .filter_map(|r| rua(&String::from_utf8_lossy(r)))
                    .flatten()
                    .collect(),
                Err(_) => Vec::new(),
            };
            if rua.is_empty() {
                lines.push(format!(
                    "{domain}: no _smtp._tls record with a mailto: or https: rua, no report"
                ));
                continue;
            }
            let json = report.json.to_string();
            let mut https = 0;
            for dest in rua {
                let to = dest.as_str();
                if matches!(dest, Rua::Https(_)) {
                    https += 1;
                    if https > MAX_HTTPS_DESTINATIONS {
                        lines.push(format!(
                            "{domain}: not sent to {to}: only the first {MAX_HTTPS_DESTINATIONS} https: destinations of a record are used"
                        ));
                        continue;
                    }
                }
                if let Some(why) = self.gate(&ledger, &today, &report.report_id, &dest) {
                    lines.push(format!("{domain}: not sent to {to}: {why}"));
                    continue;
                }
                let counts = format!(
                    "{} successful, {} failed sessions",
                    report.successes, report.failures
                );
                let sent = match &dest {
                    Rua::Mailto(to) => self
                        .queue_one(&report, &json, &from, to, &who, now)
                        .await
                        .map(|id| format!("queued to {to} as {id}")),
                    Rua::Https(url) => match &self.poster {
                        Some(p) => p
                            .post(url, &json)
                            .await
                            .map(|status| format!("posted to {url} (HTTP {status})")),
                        None => Err("no HTTPS client for https: destinations".into()),
                    },
                };
                match sent {
                    Ok(what) => {
                        self.record_sent(&mut ledger, &today, &report.report_id, to);
                        postern_metrics::inc("postern_reports_sent_total", &[("kind", "tlsrpt")]);
                        info!(
                            "TLS-RPT report {} for {domain} ({counts}) {what}",
                            report.report_id
                        );
                        lines.push(format!("{domain}: {what} ({counts})"));
                    }
                    Err(e) => {
                        warn!("TLS-RPT report for {domain} to {to} not sent: {e}");
                        lines.push(format!("{domain}: not sent to {to}: {e}"));
                    }
                }
            }
        }
        if lines.is_empty() {
            lines.push("no sessions in the period: no report".into());
        }
        lines
    }

    /// Why a TLS-RPT report may not go to `dest` now, if it may not. The allow and deny
    /// lists match an `https:` destination by its host name.
    fn gate(&self, ledger: &str, today: &str, report_id: &str, dest: &Rua) -> Option<&'static str> {
        let allowed = match dest {
            Rua::Mailto(a) => self.cfg.destination_allowed(a),
            Rua::Https(url) => postern_sts::fetch::HttpsUrl::parse(url)
                .is_some_and(|u| self.cfg.destination_allowed(&u.host)),
        };
        self.gate_for(ledger, today, report_id, dest.as_str(), allowed)
    }

    /// [`Sender::gate`] for any destination whose allow/deny verdict is `allowed`.
    fn gate_for(
        &self,
        ledger: &str,
        today: &str,
        report_id: &str,
        to: &str,
        allowed: bool,
    ) -> Option<&'static str> {
        let sent_today = ledger.lines().filter(|l| l.starts_with(today)).count();
        let to_dest = ledger
            .lines()
            .filter(|l| l.starts_with(today) && l.ends_with(&format!(" {to}")))
            .count();
        if !allowed {
            Some("destination not allowed ([reports] allow/deny)")
        } else if ledger
            .lines()
            .any(|l| l.ends_with(&format!(" {report_id} {to}")))
        {
            Some("already sent")
        } else if sent_today >= self.cfg.max_reports_per_day as usize {
            Some("[reports] max_reports_per_day reached")
        } else if to_dest >= self.cfg.max_reports_per_destination as usize {
            Some("[reports] max_reports_per_destination reached")
        } else {
            None
        }
    }

    fn record_sent(&self, ledger: &mut String, today: &str, report_id: &str, to: &str) {
        let line = format!("{today} {report_id} {to}\n");
        append(&ledger_path(&self.state_dir), &line);
        ledger.push_str(&line);
    }

    /// Build and queue the DMARC aggregate reports for `[begin, end)`.
    pub async fn send_dmarc(&self, begin: u64, end: u64) -> Vec<String> {
        let mut lines = Vec::new();
        let events = match read(&events_dir(&self.state_dir), begin, end) {
            Ok(r) => r.events,
            Err(e) => return vec![format!("cannot read the store: {e}")],
        };
        let who = self.submitter();
        let from = self.cfg.from_address(&self.hostname);
        let now = postern_queue::unix_now();
        let today = day_of(now);
        let mut ledger = std::fs::read_to_string(ledger_path(&self.state_dir)).unwrap_or_default();
        let policy_domains = crate::dmarc::policy_domains(&self.dns, &events, begin, end).await;
        for (from, e) in &policy_domains.unknown {
            lines.push(format!(
                "{from}: DMARC evaluations not reported: the domain whose DMARC record applies is unknown ({e}); once DNS answers, send them with `postern reports send-now {}`",
                day_of(begin)
            ));
        }
        for report in
            crate::dmarc::build_by_policy_domain(&events, begin, end, &who, &policy_domains)
        {
            let domain = &report.domain;
            let rua = crate::dmarc::mailto(&report.rua);
            if rua.is_empty() {
                lines.push(format!(
                    "{domain}: DMARC record without rua=mailto:, no report"
                ));
                continue;
            }
            for to in rua {
                if let Some(name) = crate::dmarc::needs_verification(domain, &to) {
                    let ok = self
                        .dns
                        .txt(&name)
                        .await
                        .is_ok_and(|a| a.records.iter().any(|r| crate::dmarc::is_dmarc1(r)));
                    if !ok {
                        lines.push(format!(
                            "{domain}: not sent to {to}: external destination not verified (no v=DMARC1 at {name})"
                        ));
                        continue;
                    }
                }
                let allowed = self.cfg.destination_allowed(&to);
                if let Some(why) = self.gate_for(&ledger, &today, &report.report_id, &to, allowed) {
                    lines.push(format!("{domain}: not sent to {to}: {why}"));
                    continue;
                }
                let unique = format!("{:016x}", fnv(report.report_id.as_bytes()));
                let mail = ReportMail {
                    from: &from,
                    to: &to,
                    subject: format!(
                        "Report Domain: {domain} Submitter: {} Report-ID: <{}>",
                        who.domain, report.report_id
                    ),
                    headers: Vec::new(),
                    report_type: "",
                    text: format!(
                        "This is a DMARC aggregate report from {}.\nReport Domain: {domain}\nSubmitter: {}\nReport-ID: <{}>\n",
                        who.organization, who.domain, report.report_id
                    ),
                    content_type: "application/gzip",
                    file_name: format!(
                        "{}!{domain}!{}!{}!{unique}.xml.gz",
                        who.domain,
                        report.begin,
                        report.end.saturating_sub(1)
                    ),
                    report: report.xml.as_bytes(),
                    now,
                    message_id: format!("dmarc.{unique}.{now}"),
                };
                match self.enqueue(&mail, &from, &to, now).await {
                    Ok(id) => {
                        self.record_sent(&mut ledger, &today, &report.report_id, &to);
                        postern_metrics::inc("postern_reports_sent_total", &[("kind", "dmarc")]);
                        info!(
                            "DMARC aggregate report {} for {domain} ({} messages) queued to {to} as {id}",
                            report.report_id, report.messages
                        );
                        lines.push(format!(
                            "{domain}: DMARC report queued to {to} as {id} ({} messages)",
                            report.messages
                        ));
                    }
                    Err(e) => lines.push(format!("{domain}: DMARC report not queued to {to}: {e}")),
                }
            }
        }
        lines
    }

    async fn queue_one(
        &self,
        report: &crate::tlsrpt::Report,
        json: &str,
        from: &str,
        to: &str,
        who: &Submitter,
        now: u64,
    ) -> Result<QueueId, String> {
        let domain = &report.policy_domain;
        let unique = format!("{:016x}", fnv(report.report_id.as_bytes()));
        let mail = ReportMail {
            from,
            to,
            subject: format!(
                "Report Domain: {domain} Submitter: {} Report-ID: <{}>",
                who.domain, report.report_id
            ),
            headers: vec![
                format!("TLS-Report-Domain: {domain}"),
                format!("TLS-Report-Submitter: {}", who.domain),
                "TLS-Required: No".into(),
            ],
            report_type: "tlsrpt",
            text: format!(
                "This is an aggregate TLS report from {}.\nReport Domain: {domain}\nSubmitter: {}\nReport-ID: <{}>\n",
                who.organization, who.domain, report.report_id
            ),
            content_type: "application/tlsrpt+gzip",
            file_name: format!(
                "{}!{domain}!{}!{}!{unique}.json.gz",
                who.domain,
                report.begin,
                report.end.saturating_sub(1)
            ),
            report: json.as_bytes(),
            now,
            message_id: format!("tlsrpt.{unique}.{now}"),
        };
        self.enqueue(&mail, from, to, now).await
    }

    /// Compose, sign and queue one report message as our own report mail.
    async fn enqueue(
        &self,
        mail: &ReportMail<'_>,
        from: &str,
        to: &str,
        now: u64,
    ) -> Result<QueueId, String> {
        let mut bytes = compose(mail).map_err(|e| e.to_string())?;
        if let Some(sign) = &self.sign
            && let Some(mut headers) = sign(&bytes)
        {
            headers.extend_from_slice(&bytes);
            bytes = headers;
        }
        let sender = parse_mailbox(from).map_err(|e| format!("[reports] from {from:?}: {e}"))?;
        let rcpt = parse_mailbox(to).map_err(|e| format!("{to:?}: {e}"))?;
        let env = Envelope {
            id: QueueId::generate(),
            arrived: now,
            client_ip: None,
            helo: REPORT_MAIL_HELO.into(),
            sender: ReversePath::Address(sender),
            recipients: vec![Recipient::new(rcpt)],
            body: BodyType::SevenBit,
            smtputf8: false,
            ret: None,
            envid: None,
            sender_tls: SenderTls::TlsOptional,
        };
        let mut inc = self.queue.begin(env).await.map_err(|e| e.to_string())?;
        let id = inc.id();
        inc.write(&bytes).await.map_err(|e| e.to_string())?;
        inc.commit().await.map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// The daemon's task: the daily run, and `send-now` requests.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let jitter = self.cfg.jitter.get().as_secs();
        let last = postern_queue::safefs::read_regular(&daily_marker_path(&self.state_dir), 64)
            .ok()
            .and_then(|b| crate::store::day_start(String::from_utf8_lossy(&b).trim()));
        let mut plan = plan(postern_queue::unix_now(), self.cfg.send_hour, jitter, last);
        if plan.catch_up {
            let days: Vec<String> = plan.days.iter().map(|d| day_of(*d)).collect();
            info!(
                "reports: no daily run is recorded for {} (Postern was not running at [reports] send_hour, or this is its first start): sending in a few minutes; a report already sent is not sent again",
                days.join(", ")
            );
        }
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if *shutdown.borrow() {
                return;
            }
            // Sending may wait on other servers (an https: POST up to a minute): a stop
            // request ends it at the next wait. The ledger is written after each report
            // sent, so a stop loses nothing and sends nothing twice.
            let mut stop = shutdown.clone();
            let work = self.once(&mut plan);
            tokio::select! {
                _ = stop.changed() => return,
                () = work => {}
            }
        }
    }

    /// One turn of [`Sender::run`]: a `send-now` request, then the daily run when due.
    async fn once(&self, plan: &mut Plan) {
        let jitter = self.cfg.jitter.get().as_secs();
        let trigger = trigger_path(&self.state_dir);
        if let Ok(req) = std::fs::read_to_string(&trigger) {
            let _ = std::fs::remove_file(&trigger);
            let now = postern_queue::unix_now();
            let (begin, end) = window(req.trim(), now);
            let mut lines = if self.cfg.tls_rpt {
                self.send_tlsrpt(begin, end).await
            } else {
                vec!["[reports] tls_rpt = false: no TLS-RPT reports are sent".into()]
            };
            if self.cfg.dmarc {
                lines.extend(self.send_dmarc(begin, end).await);
            }
            let _ = postern_queue::safefs::replace_file(
                &answer_path(&self.state_dir).with_extension("tmp"),
                &answer_path(&self.state_dir),
                (lines.join("\n") + "\n").as_bytes(),
            );
        }
        let now = postern_queue::unix_now();
        if now < plan.at {
            return;
        }
        for &day in &plan.days {
            if self.cfg.tls_rpt {
                for l in self.send_tlsrpt(day, day + DAY).await {
                    info!("TLS-RPT: {l}");
                }
            }
            if self.cfg.dmarc {
                for l in self.send_dmarc(day, day + DAY).await {
                    info!("DMARC: {l}");
                }
            }
        }
        trim_ledger(&self.state_dir, now);
        let covered = plan.days.iter().copied().max();
        if let Some(last) = covered {
            let marker = daily_marker_path(&self.state_dir);
            if let Err(e) = postern_queue::safefs::replace_file(
                &marker.with_extension("tmp"),
                &marker,
                format!("{}\n", day_of(last)).as_bytes(),
            ) {
                warn!(
                    "reports: cannot record the daily run in {}: {e}",
                    marker.display()
                );
            }
        }
        *plan = self::plan(
            postern_queue::unix_now(),
            self.cfg.send_hour,
            jitter,
            covered,
        );
    }
}

/// When the next daily run happens and which days (UTC day starts) it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    at: u64,
    days: Vec<u64>,
    /// A day that should have been sent already was not: a run in a few minutes.
    catch_up: bool,
}

/// At most this many missed days are caught up after an outage.
const CATCH_UP_DAYS: u64 = 7;

/// The next daily run, from the last day a run covered (`last`, a day start; `None` if
/// none is recorded). Each day's reports go out at `hour`:00 UTC the next day, plus a
/// random delay below `jitter`. If a day that should have gone by `now` has not (the
/// daemon was down at that time, or this is the first start), a run in a few minutes
/// sends it (and up to [`CATCH_UP_DAYS`] before it); the ledger keeps any report from
/// going twice. After a run the next one is the next day's: never twice a day.
fn plan(now: u64, hour: u8, jitter: u64, last: Option<u64>) -> Plan {
    let today = now - now % DAY;
    let due = today + u64::from(hour) * 3600;
    // The last day whose run time has passed.
    let expected = if now >= due {
        today - DAY
    } else {
        today - 2 * DAY
    };
    let delay = |spread: u64| {
        if spread == 0 {
            0
        } else {
            rand::random::<u64>() % spread
        }
    };
    let first_missing = match last {
        Some(l) if l >= expected => None,
        Some(l) => Some((l + DAY).max(expected - (CATCH_UP_DAYS - 1) * DAY)),
        None => Some(expected),
    };
    match first_missing {
        Some(first) => Plan {
            at: now + 30 + delay(jitter.min(300)),
            days: (first..=expected).step_by(DAY as usize).collect(),
            catch_up: true,
        },
        None => {
            let day = last.map_or(expected, |l| l.max(expected)) + DAY;
            Plan {
                at: day + DAY + u64::from(hour) * 3600 + delay(jitter),
                days: vec![day],
                catch_up: false,
            }
        }
    }
}

/// The period a `send-now` request names: `today` (so far, the default), `yesterday`,
/// or a day `YYYY-MM-DD`.
pub fn window(req: &str, now: u64) -> (u64, u64) {
    let today = now - now % DAY;
    match req {
        "" | "today" => (today, now + 1),
        "yesterday" => (today - DAY, today),
        d => {
            let mut t = today;
            // Walk back at most a year to the named day.
            for _ in 0..400 {
                if day_of(t) == d {
                    return (t, t + DAY);
                }
                t = t.saturating_sub(DAY);
            }
            (today, now + 1)
        }
    }
}

/// How long the ledger remembers a report: as far back as `send-now` can name a day
/// ([`window`]), so no report is ever sent twice, and no further (it stays bounded).
pub const LEDGER_DAYS: u64 = 400;

/// Drop the ledger lines older than [`LEDGER_DAYS`] (at the daily run).
fn trim_ledger(state_dir: &Path, now: u64) {
    let path = ledger_path(state_dir);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let cutoff = day_of(now.saturating_sub(LEDGER_DAYS * DAY));
    let kept: String = text
        .lines()
        .filter(|l| l.get(..10).is_none_or(|d| d >= cutoff.as_str()))
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() == text.len() {
        return;
    }
    if let Err(e) =
        postern_queue::safefs::replace_file(&path.with_extension("tmp"), &path, kept.as_bytes())
    {
        warn!("reports: cannot trim {}: {e}", path.display());
    }
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    let r = postern_queue::safefs::open_owned(path, true).and_then(|mut f| {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::End(0))?;
        f.write_all(line.as_bytes())?;
        f.sync_data()
    });
    if let Err(e) = r {
        warn!("reports: cannot record in {}: {e}", path.display());
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03 00:00 UTC.
    const D: u64 = 1_796_256_000;

    #[test]
    fn the_daily_run_plan() {
        assert_eq!(day_of(D), "2026-12-03");
        let yesterday = D - DAY;
        // 05:00, send_hour 1: yesterday's run is due; not recorded (or never): soon.
        let now = D + 5 * 3600;
        for last in [None, Some(D - 2 * DAY)] {
            let p = plan(now, 1, 3600, last);
            assert!(p.catch_up);
            assert_eq!(p.days, vec![yesterday]);
            assert!((now + 30..now + 330).contains(&p.at), "{p:?}");
        }
        // Yesterday's went: the next run is tomorrow's, for today. Never twice a day.
        let p = plan(now, 1, 3600, Some(yesterday));
        assert!(!p.catch_up);
        assert_eq!(p.days, vec![D]);
        assert!((D + DAY + 3600..D + DAY + 7200).contains(&p.at), "{p:?}");
        // 00:30, before today's run time, yesterday's not due yet; the day before's went.
        let p = plan(D + 1800, 1, 0, Some(D - 2 * DAY));
        assert!(!p.catch_up);
        assert_eq!((p.at, p.days), (D + 3600, vec![yesterday]));
        // 00:30, and the day before yesterday was missed (down at its run time): soon,
        // then today's run as usual.
        let p = plan(D + 1800, 1, 0, Some(D - 3 * DAY));
        assert!(p.catch_up);
        assert_eq!(p.days, vec![D - 2 * DAY]);
        // Down for days: the missed ones, at most a week.
        let p = plan(now, 1, 0, Some(D - 4 * DAY));
        assert_eq!(p.days, vec![D - 3 * DAY, D - 2 * DAY, yesterday]);
        let p = plan(now, 1, 0, Some(D - 40 * DAY));
        assert_eq!(p.days.len(), 7);
        assert_eq!(p.days.last(), Some(&yesterday));
    }

    #[test]
    fn the_ledger_keeps_400_days() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("reports")).unwrap();
        let path = ledger_path(dir.path());
        let old = day_of(D - (LEDGER_DAYS + 1) * DAY);
        let kept = day_of(D - LEDGER_DAYS * DAY);
        std::fs::write(
            &path,
            format!("{old} r1 a@x.example\n{kept} r2 a@x.example\n2026-12-03 r3 b@y.example\n"),
        )
        .unwrap();
        trim_ledger(dir.path(), D);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("{kept} r2 a@x.example\n2026-12-03 r3 b@y.example\n")
        );
    }
}
