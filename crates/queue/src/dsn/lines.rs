//! Writing lines for reports: header fields folded at spaces, paragraphs wrapped, and
//! outside text reduced to what may appear in them. Every line ends in CRLF and stays
//! under RFC 5322's 998 octets.

/// Longest word kept whole; anything longer is cut short so every line stays under
/// RFC 5322's 998 octets.
const MAX_WORD: usize = 900;
/// Where lines are folded or wrapped.
const WIDTH: usize = 76;

/// A header field, folded at spaces.
pub(super) fn header(out: &mut String, name: &str, value: &str) {
    fold(out, &format!("{name}: "), value, " ");
}

/// A delivery-status field (same syntax as a header field).
pub(super) fn field(out: &mut String, name: &str, value: &str) {
    header(out, name, value);
}

/// A paragraph of text, wrapped, each line starting with `indent`, then an empty line.
pub(super) fn para(out: &mut String, text: &str, indent: &str) {
    fold(out, indent, text, indent);
    out.push_str("\r\n");
}

/// Write `first` then the words of `value`, breaking lines before `WIDTH` where a space
/// allows; continuation lines start with `cont`.
fn fold(out: &mut String, first: &str, value: &str, cont: &str) {
    let mut line = first.to_string();
    let mut empty = true;
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        let word = cut(word);
        if !empty && line.len() + 1 + word.len() > WIDTH {
            out.push_str(&line);
            out.push_str("\r\n");
            line = cont.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
    out.push_str("\r\n");
}

fn cut(word: &str) -> &str {
    if word.len() <= MAX_WORD {
        return word;
    }
    let mut end = MAX_WORD;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// Printable ASCII only: controls become spaces, anything else `?`.
pub(super) fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c,
            c if c.is_control() => ' ',
            _ => '?',
        })
        .collect()
}

/// Text for part 1 and headers: controls become spaces; non-ASCII is kept only when the
/// report may carry UTF-8 (the original was SMTPUTF8).
pub(super) fn text(s: &str, utf8: bool) -> String {
    if utf8 {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        ascii(s)
    }
}

/// Quoted-printable (RFC 2045 §6.7) of CRLF-separated text: line breaks stay hard breaks,
/// lines are cut with soft breaks (`=`) to at most 76 characters, and a space or tab at
/// the end of a line is encoded.
pub(super) fn quoted_printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for (i, line) in s.split("\r\n").enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = matches!(b, b'!'..=b'<' | b'>'..=b'~') || (b == b' ' && !last);
            let piece = if literal {
                char::from(b).to_string()
            } else {
                format!("={b:02X}")
            };
            // Room for the piece and, unless it ends the line, a soft break's `=`.
            if width + piece.len() + usize::from(!last) > WIDTH {
                out.push_str("=\r\n");
                width = 0;
            }
            out.push_str(&piece);
            width += piece.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_encodes_and_wraps() {
        assert_eq!(
            quoted_printable("Caf\u{e9} = ok \r\nx"),
            "Caf=C3=A9 =3D ok=20\r\nx"
        );
        let long = quoted_printable(&"\u{fc}".repeat(60));
        for line in long.split("\r\n") {
            assert!(line.len() <= 76, "{line}");
        }
        assert_eq!(long.replace("=\r\n", ""), "=C3=BC".repeat(60));
    }
}
