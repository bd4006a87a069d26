//! The BDAT content checker (RFC 3030 CHUNKING).
//!
//! BDAT carries message octets with an explicit length, so there is no end-of-data line
//! and no dot-stuffing. Postern does not offer BINARYMIME, so the content must still be
//! text with CRLF line endings: a bare CR or bare LF (even split across two chunks) is an
//! error, exactly as in DATA, so that nothing accepted by BDAT can be turned into a
//! smuggled message when relayed onward with DATA. A NUL octet is refused for the same
//! reason (a next hop that drops it could see an end-of-data line).

use crate::MAX_TEXT_LINE;
use crate::data::ContentError;

/// Checks and collects the content of a BDAT transaction, chunk after chunk.
#[derive(Debug)]
pub struct BdatReader {
    max_size: u64,
    size: u64,
    line: usize,
    prev_cr: bool,
    eight_bit: bool,
    error: Option<ContentError>,
}

impl BdatReader {
    pub fn new(max_size: u64) -> BdatReader {
        BdatReader {
            max_size,
            size: 0,
            line: 0,
            prev_cr: false,
            eight_bit: false,
            error: None,
        }
    }

    /// Check a piece of chunk data and append it to `out` (nothing is appended once an
    /// error was found).
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) {
        for &b in data {
            match b {
                b'\n' if self.prev_cr => {
                    self.prev_cr = false;
                    self.line = 0;
                    continue;
                }
                b'\n' => self.fail(ContentError::BareLf),
                0 => self.fail(ContentError::Nul),
                _ if self.prev_cr => self.fail(ContentError::BareCr),
                _ => {}
            }
            self.prev_cr = b == b'\r';
            if b >= 0x80 {
                self.eight_bit = true;
            }
            self.line += 1;
            // +1 for the LF still to come.
            if self.line + 1 > MAX_TEXT_LINE {
                self.fail(ContentError::LineTooLong);
            }
        }
        if self.error.is_some() {
            return;
        }
        self.size += data.len() as u64;
        if self.size > self.max_size {
            self.fail(ContentError::TooLarge);
            return;
        }
        out.extend_from_slice(data);
    }

    /// At `BDAT n LAST`: the final verdict. Content that does not end with CRLF gets one
    /// appended to `out`, so the stored message is always complete lines.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<u64, ContentError> {
        if self.prev_cr {
            self.fail(ContentError::BareCr);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.line > 0 {
            out.extend_from_slice(b"\r\n");
            self.size += 2;
            self.line = 0;
        }
        Ok(self.size)
    }

    /// An error found so far, if any (the transaction goes on until LAST regardless).
    pub fn error(&self) -> Option<ContentError> {
        self.error
    }

    pub fn saw_eight_bit(&self) -> bool {
        self.eight_bit
    }

    fn fail(&mut self, e: ContentError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&[u8]], max: u64) -> (Vec<u8>, Result<u64, ContentError>) {
        let mut r = BdatReader::new(max);
        let mut out = Vec::new();
        for p in parts {
            r.feed(p, &mut out);
        }
        let res = r.finish(&mut out);
        (out, res)
    }

    #[test]
    fn good_chunks_pass_through_unchanged() {
        let (out, res) = chunks(&[b"Subject: x\r", b"\n\r\n.\r\nbody\r\n"], 100);
        assert_eq!(out, b"Subject: x\r\n\r\n.\r\nbody\r\n");
        assert_eq!(res, Ok(out.len() as u64));
    }

    #[test]
    fn bare_line_endings_are_refused_even_across_chunks() {
        assert_eq!(chunks(&[b"a\nb\r\n"], 100).1, Err(ContentError::BareLf));
        assert_eq!(chunks(&[b"a\rb\r\n"], 100).1, Err(ContentError::BareCr));
        assert_eq!(
            chunks(&[b"a\r", b"b\r\n"], 100).1,
            Err(ContentError::BareCr)
        );
        assert_eq!(chunks(&[b"a\r\n", b"\n"], 100).1, Err(ContentError::BareLf));
        assert_eq!(chunks(&[b"a\r"], 100).1, Err(ContentError::BareCr));
        assert_eq!(chunks(&[b"a\r\n.\n"], 100).1, Err(ContentError::BareLf));
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(chunks(&[b"a\r\n\0.\r\n"], 100).1, Err(ContentError::Nul));
        assert_eq!(chunks(&[b"a\r\n", b"\0"], 100).1, Err(ContentError::Nul));
    }

    #[test]
    fn missing_final_crlf_is_added() {
        let (out, res) = chunks(&[b"a\r\nb"], 100);
        assert_eq!(out, b"a\r\nb\r\n");
        assert_eq!(res, Ok(6));
    }

    #[test]
    fn limits() {
        assert_eq!(
            chunks(&[b"0123456789", b"0123456789"], 15).1,
            Err(ContentError::TooLarge)
        );
        let long = vec![b'x'; 999];
        assert_eq!(
            chunks(&[&long, b"\r\n"], 1 << 20).1,
            Err(ContentError::LineTooLong)
        );
        let ok = vec![b'x'; 998];
        assert!(chunks(&[&ok, b"\r\n"], 1 << 20).1.is_ok());
    }
}
