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
