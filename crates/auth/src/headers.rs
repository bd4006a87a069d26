//! Header-section surgery: finding forged Authentication-Results fields and building the
//! new top of a message.

use std::ops::Range;

/// Byte ranges (whole fields, continuation lines and CRLF included) of the
/// `Authentication-Results` fields in the header section of `message` whose authserv-id
/// is `authserv_id` (compared without case, RFC 8601 §2.5 and §5: such fields that did
/// not come from us are forgeries and must be removed).
pub fn forged_results(message: &[u8], authserv_id: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for (range, name, value) in fields(message) {
        if name.eq_ignore_ascii_case(b"authentication-results")
            && authserv_id_of(value).is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
        {
            out.push(range);
        }
    }
    out
}

/// The header fields of `message`: (range of the whole field, name, value).
fn fields(message: &[u8]) -> Vec<(Range<usize>, &[u8], &[u8])> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let rest = &message[pos..];
        if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            break; // the empty line: end of the header section
        }
        // A field runs to the first line end not followed by a space or tab.
        let mut end = pos;
        loop {
            match message[end..].iter().position(|&b| b == b'\n') {
                Some(i) => {
                    end += i + 1;
                    if !matches!(message.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = message.len();
                    break;
                }
            }
        }
        let field = &message[pos..end];
        if let Some(colon) = field.iter().position(|&b| b == b':') {
            let name = trim(&field[..colon]);
            out.push((pos..end, name, &field[colon + 1..]));
        }
        pos = end;
    }
    out
}

fn trim(b: &[u8]) -> &[u8] {
    let s = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let e = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &b[s..e]
}

/// The authserv-id of an Authentication-Results value: its first token, after
/// whitespace and comments.
fn authserv_id_of(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut depth = 0u32;
    let mut id = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            ';' => break,
            c if c.is_whitespace() => {
                if !id.is_empty() {
                    break;
                }
            }
            c => id.push(c),
        }
    }
    (!id.is_empty()).then_some(id)
}

/// The new top of the stored message: `prepend`, then `trace` (our Received field), then
/// the start of `message` up to the last removed range with the ranges in `strip` left
/// out. Returns how many bytes of `message` the new top replaces.
pub fn new_head(
    prepend: &[u8],
    trace: &[u8],
    message: &[u8],
    strip: &[Range<usize>],
) -> (usize, Vec<u8>) {
    let upto = strip
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
        .min(message.len());
    let mut head = Vec::with_capacity(prepend.len() + trace.len() + upto);
    head.extend_from_slice(prepend);
    head.extend_from_slice(trace);
    let mut pos = 0;
    let mut sorted: Vec<&Range<usize>> = strip.iter().collect();
    sorted.sort_by_key(|r| r.start);
    for r in sorted {
        if r.start > pos {
            head.extend_from_slice(&message[pos..r.start.min(upto)]);
        }
        pos = pos.max(r.end);
    }
    if pos < upto {
        head.extend_from_slice(&message[pos..upto]);
    }
    (upto, head)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"Authentication-Results: mx.example.net; spf=pass\r\n\
Subject: hi\r\n\
Authentication-Results: (forged) MX.Example.Net;\r\n\tdkim=pass\r\n\
Authentication-Results: other.example; dmarc=pass\r\n\
\r\n\
Authentication-Results: mx.example.net; in the body\r\n";

    #[test]
    fn only_our_authserv_id_in_the_header_section() {
        let r = forged_results(MSG, "mx.example.net");
        assert_eq!(r.len(), 2);
        let (n, head) = new_head(b"A: 1\r\n", b"Received: x\r\n", MSG, &r);
        let rest = &MSG[n..];
        let whole = [head.as_slice(), rest].concat();
        let text = String::from_utf8(whole).unwrap();
        assert_eq!(
            text,
            "A: 1\r\nReceived: x\r\nSubject: hi\r\nAuthentication-Results: other.example; dmarc=pass\r\n\r\nAuthentication-Results: mx.example.net; in the body\r\n"
        );
    }

    #[test]
    fn nothing_to_strip_prepends_only() {
        let (n, head) = new_head(b"A: 1\r\n", b"R: 2\r\n", b"S: x\r\n\r\nbody", &[]);
        assert_eq!(n, 0);
        assert_eq!(head, b"A: 1\r\nR: 2\r\n");
    }
}
