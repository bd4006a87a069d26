//! Preparing message content for the wire when Postern is the client.
//!
//! # Security
//! Whatever is in the queue file, the bytes sent after DATA have CRLF line endings only
//! (a stray CR or LF becomes CRLF) and every line starting with `.` is dot-stuffed, so a
//! message can never end early at the next hop (no smuggling through Postern).

/// Streaming encoder: CRLF normalisation, and for DATA dot-stuffing (RFC 5321 §4.5.2).
#[derive(Debug)]
pub struct DataEncoder {
    at_line_start: bool,
    prev_cr: bool,
    /// DATA: stuff dots and end with `.CRLF`; BDAT: neither.
    dot_stuffing: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder::new()
    }
}

impl DataEncoder {
    /// For DATA.
    pub fn new() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
            prev_cr: false,
            dot_stuffing: true,
        }
    }

    /// For BDAT: line endings normalised, no stuffing, no end-of-data line.
    pub fn for_bdat() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
            prev_cr: false,
            dot_stuffing: false,
        }
    }

    /// Encode a piece of content into `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 4);
        for &b in input {
            if self.prev_cr {
                self.prev_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.prev_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    if self.dot_stuffing && self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    /// End the content: complete the last line and, for DATA, add the end-of-data line.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.prev_cr || !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        self.prev_cr = false;
        self.at_line_start = true;
        if self.dot_stuffing {
            out.extend_from_slice(b".\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DataReader;

    fn enc(parts: &[&[u8]]) -> Vec<u8> {
        let mut e = DataEncoder::new();
        let mut out = Vec::new();
        for p in parts {
            e.encode(p, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn stuffs_and_terminates() {
        assert_eq!(enc(&[b"a\r\n.b\r\n..\r\n"]), b"a\r\n..b\r\n...\r\n.\r\n");
        assert_eq!(enc(&[b".", b"x\r", b"\n"]), b"..x\r\n.\r\n");
        assert_eq!(enc(&[b""]), b".\r\n");
        assert_eq!(enc(&[b"no newline"]), b"no newline\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_cannot_end_data_at_the_next_hop() {
        for evil in [
            &b"a\n.\nMAIL"[..],
            b"a\r.\rMAIL",
            b"a\r\n.\nMAIL",
            b"a\n.\r\nMAIL",
            b"a\r.\r\nMAIL",
        ] {
            let wire = enc(&[evil]);
            // A strict reader at the next hop sees exactly one message, ending at the end.
            let mut r = DataReader::new(1 << 20);
            let mut content = Vec::new();
            let f = r.feed(&wire, &mut content);
            assert!(f.done && f.consumed == wire.len(), "{evil:?} -> {wire:?}");
            assert!(r.result().is_ok(), "{evil:?}");
            assert!(content.ends_with(b"MAIL\r\n"));
        }
    }

    #[test]
    fn round_trip_through_the_reader() {
        let msg = b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\nend\r\n";
        let wire = enc(&[&msg[..7], &msg[7..]]);
        let mut r = DataReader::new(1 << 20);
        let mut content = Vec::new();
        assert!(r.feed(&wire, &mut content).done);
        assert_eq!(content, msg);
    }

    #[test]
    fn crlf_normalisation_for_bdat() {
        let mut e = DataEncoder::for_bdat();
        let mut out = Vec::new();
        e.encode(b"a\nb\r", &mut out);
        e.encode(b"c\r", &mut out);
        e.encode(b"\n.d", &mut out);
        e.finish(&mut out);
        assert_eq!(out, b"a\r\nb\r\nc\r\n.d\r\n");
    }
}
