//! A streaming look at the header section of message content, before anything parses it.
//!
//! The session feeds it the content the DATA or BDAT reader produced (CRLF line endings,
//! dot-unstuffed), piece by piece as it arrives. It counts header fields, `Received:`
//! fields (RFC 5321 §6.3: the hop count a mail loop makes grow) and the size of the header
//! section, and notes whether any `Authentication-Results:` field is present and whether a
//! `TLS-Required: No` field is (RFC 8689 §5). It keeps no text: memory is a few bytes of
//! name (and of that one field's value) whatever the input.
//!
//! # Security
//! This runs before any other parser sees the message, so a header section of millions of
//! tiny fields is refused by counting alone (`552 5.3.4`), and a message that has been
//! round a loop too often is refused (`554 5.4.6`) instead of going round again.
//!
//! # Standards
//! RFC 5322 §2.2 (fields, folding) and §3.6.7 (trace fields), RFC 5321 §6.3 (loop
//! detection by counting Received fields), RFC 3463 (5.4.6 routing loop, 5.3.4 too big),
//! RFC 8689 §5 (the `TLS-Required` field: its one defined value is `No`, after optional
//! folding white space; compared here without regard to case).

use crate::reply::Reply;

/// Limits for [`HeaderScan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most `Received:` fields accepted (Postfix `hopcount_limit`).
    pub max_hops: usize,
    /// Most header fields of any name.
    pub max_fields: usize,
    /// Largest header section in octets (up to and including the empty line).
    pub max_size: u64,
}

/// Why the header section is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// More `Received:` fields than allowed: the count found so far.
    TooManyHops(usize),
    TooManyFields,
    TooLarge,
}

impl HeaderError {
    pub fn reply(self) -> Reply {
        match self {
            HeaderError::TooManyHops(_) => {
                Reply::new(554, "5.4.6", "Too many hops (Received: fields), mail loop?")
            }
            HeaderError::TooManyFields => {
                Reply::new(552, "5.3.4", "Message header section has too many fields")
            }
            HeaderError::TooLarge => {
                Reply::new(552, "5.3.4", "Message header section is too large")
            }
        }
    }

    /// Short form for logs.
    pub fn describe(self) -> String {
        match self {
            HeaderError::TooManyHops(n) => {
                format!("more than {n} Received: header fields (mail loop?)")
            }
            HeaderError::TooManyFields => "header section has too many fields".into(),
            HeaderError::TooLarge => "header section too large".into(),
        }
    }
}

/// Longest field name remembered (enough for `Authentication-Results`).
const NAME: usize = 24;

/// See the module docs.
#[derive(Debug)]
pub struct HeaderScan {
    limits: HeaderLimits,
    /// Still inside the header section.
    in_header: bool,
    at_line_start: bool,
    /// Still reading the first word of a field line (up to the colon).
    in_name: bool,
    name: [u8; NAME],
    name_len: usize,
    /// The current line is empty so far (only a CR was seen).
    line_empty: bool,
    size: u64,
    fields: usize,
    hops: usize,
    auth_results: bool,
    /// Inside the value of a `TLS-Required:` field: the first non-blank octets of it
    /// (lower case), their count (more than 3 can never be "no"), and whether blank
    /// space followed them (more text after it makes the value something else).
    tls_value: Option<([u8; 3], usize, bool)>,
    tls_required_no: bool,
    error: Option<HeaderError>,
}

impl HeaderScan {
    pub fn new(limits: HeaderLimits) -> HeaderScan {
        HeaderScan {
            limits,
            in_header: true,
            at_line_start: true,
            in_name: false,
            name: [0; NAME],
            name_len: 0,
            line_empty: true,
            size: 0,
            fields: 0,
            hops: 0,
            auth_results: false,
            tls_value: None,
            tls_required_no: false,
            error: None,
        }
    }

    /// Look at the next piece of content.
    pub fn feed(&mut self, content: &[u8]) {
        for &b in content {
            if !self.in_header || self.error.is_some() {
                return;
            }
            self.size += 1;
            if self.size > self.limits.max_size {
                self.fail(HeaderError::TooLarge);
                return;
            }
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.at_line_start {
            self.at_line_start = false;
            self.line_empty = true;
            if b != b' ' && b != b'\t' && b != b'\r' && b != b'\n' {
                self.start_field();
            }
        }
        match b {
            b'\n' => {
                if self.line_empty {
                    self.in_header = false; // the empty line ends the header section
                    self.end_value();
                }
                self.end_name();
                self.at_line_start = true;
            }
            b'\r' => {}
            _ => {
                self.line_empty = false;
                if let Some((v, n, gap)) = self.tls_value.as_mut()
                    && !self.in_name
                {
                    if b == b' ' || b == b'\t' {
                        *gap = *n > 0;
                    } else if *gap {
                        *n = v.len() + 1;
                    } else {
                        if let Some(slot) = v.get_mut(*n) {
                            *slot = b.to_ascii_lowercase();
                        }
                        *n = (*n + 1).min(v.len() + 1);
                    }
                }
                if self.in_name {
                    if b == b':' {
                        self.end_name();
                    } else if self.name_len < NAME {
                        self.name[self.name_len] = b.to_ascii_lowercase();
                        self.name_len += 1;
                    } else {
                        self.name_len = NAME + 1; // too long to be a name we look for
                    }
                }
            }
        }
    }

    fn start_field(&mut self) {
        self.end_value();
        self.fields += 1;
        if self.fields > self.limits.max_fields {
            self.fail(HeaderError::TooManyFields);
        }
        self.in_name = true;
        self.name_len = 0;
    }

    fn end_name(&mut self) {
        if !self.in_name {
            return;
        }
        self.in_name = false;
        let name = self.name.get(..self.name_len.min(NAME)).unwrap_or(&[]);
        let name = name.trim_ascii_end();
        if self.name_len <= NAME && name == b"received" {
            self.hops += 1;
            if self.hops > self.limits.max_hops {
                self.fail(HeaderError::TooManyHops(self.limits.max_hops));
            }
        } else if self.name_len <= NAME && name == b"authentication-results" {
            self.auth_results = true;
        } else if self.name_len <= NAME && name == b"tls-required" {
            self.tls_value = Some(([0; 3], 0, false));
        }
    }

    /// The field whose value was being read has ended (a new field, or the end of the
    /// header section).
    fn end_value(&mut self) {
        if let Some((v, n, _)) = self.tls_value.take()
            && n == 2
            && &v[..2] == b"no"
        {
            self.tls_required_no = true;
        }
    }

    fn fail(&mut self, e: HeaderError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// The first limit the header section broke, if any.
    pub fn error(&self) -> Option<HeaderError> {
        self.error
    }

    /// `Received:` fields seen.
    pub fn hops(&self) -> usize {
        self.hops
    }

    /// Header fields seen.
    pub fn fields(&self) -> usize {
        self.fields
    }

    /// Octets of the header section seen (all of it, once the body started).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether an `Authentication-Results:` field is in the header section.
    pub fn saw_authentication_results(&self) -> bool {
        self.auth_results
    }

    /// Whether the header section has a `TLS-Required: No` field (RFC 8689 §5): the
    /// sender asks that recipient-side TLS policies (DANE, MTA-STS) not stop delivery.
    /// Only meaningful once the header section has ended.
    pub fn tls_required_no(&self) -> bool {
        self.tls_required_no
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits {
        max_hops: 3,
        max_fields: 10,
        max_size: 1000,
    };

    fn scan(parts: &[&[u8]], limits: HeaderLimits) -> HeaderScan {
        let mut s = HeaderScan::new(limits);
        for p in parts {
            s.feed(p);
        }
        s
    }

    fn bytewise(msg: &[u8], limits: HeaderLimits) -> HeaderScan {
        let parts: Vec<&[u8]> = msg.chunks(1).collect();
        scan(&parts, limits)
    }

    #[test]
    fn counts_fields_hops_and_stops_at_the_body() {
        let msg = b"Received: from a\r\n\tby b\r\nRECEIVED : x\r\nSubject: hi\r\n\
Authentication-Results: mx; none\r\n\r\nReceived: in the body\r\n";
        for s in [scan(&[msg], LIMITS), bytewise(msg, LIMITS)] {
            assert_eq!(s.hops(), 2);
            assert_eq!(s.fields(), 4);
            assert!(s.saw_authentication_results());
            assert_eq!(s.error(), None);
            assert_eq!(s.size(), 88);
        }
    }

    #[test]
    fn limits() {
        let hops = b"Received: 1\r\nReceived: 2\r\nReceived: 3\r\nReceived: 4\r\n\r\n";
        assert_eq!(
            bytewise(hops, LIMITS).error(),
            Some(HeaderError::TooManyHops(3))
        );
        let many = b"a:1\r\n".repeat(11);
        assert_eq!(
            scan(&[&many], LIMITS).error(),
            Some(HeaderError::TooManyFields)
        );
        let big = [b"Subject: ".as_slice(), &[b'x'; 1000]].concat();
        assert_eq!(scan(&[&big], LIMITS).error(), Some(HeaderError::TooLarge));
        // The same in the body is fine.
        let body = [b"\r\n".as_slice(), &many, &big].concat();
        assert_eq!(scan(&[&body], LIMITS).error(), None);
    }

    #[test]
    fn tls_required_no() {
        let yes: &[&[u8]] = &[
            b"Subject: x\r\nTLS-Required: No\r\n\r\nbody",
            b"tls-required:no\r\nSubject: x\r\n\r\n",
            b"TLS-Required:\r\n  NO  \r\nX: y\r\n\r\n",
            b"TLS-Required : No\r\n\r\n",
        ];
        for msg in yes {
            assert!(scan(&[msg], LIMITS).tls_required_no(), "{msg:?}");
            assert!(bytewise(msg, LIMITS).tls_required_no(), "{msg:?}");
        }
        let no: &[&[u8]] = &[
            b"TLS-Required: Yes\r\n\r\n",
            b"TLS-Required: Nope\r\n\r\n",
            b"TLS-Required: N o\r\n\r\n",
            b"TLS-Required:\r\n\r\n",
            b"X-TLS-Required: No\r\n\r\n",
            b"TLS-Required-X: No\r\n\r\n",
            b"Subject: TLS-Required: No\r\n\r\n",
            b"Subject: x\r\n\r\nTLS-Required: No\r\n",
            b"Subject: x\r\n\r\n",
        ];
        for msg in no {
            assert!(!scan(&[msg], LIMITS).tls_required_no(), "{msg:?}");
            assert!(!bytewise(msg, LIMITS).tls_required_no(), "{msg:?}");
        }
    }

    #[test]
    fn lookalike_names_do_not_count() {
        let msg = b"Received-SPF: pass\r\nX-Received: 1\r\nReceivedx: 2\r\n\
Authentication-Results-X: 3\r\n\r\n";
        let s = bytewise(msg, LIMITS);
        assert_eq!(s.hops(), 0);
        assert!(!s.saw_authentication_results());
    }
}
