//! Outcome details for the queue from the agents' own reasons.
//!
//! The relay's own error texts start with the enhanced status code that decides them
//! (`4.4.1 connect to mx.example.net[192.0.2.1]:25 failed: ...`, see
//! `outbound/client/error.rs`): [`local`] files that code in its typed field and keeps
//! the rest as the text. Replies from remote servers never come through here: they are
//! recorded with [`Detail::remote`], field by field.

use postern_queue::Detail;
use postern_smtp::enhanced::EnhancedCode;

/// One of our own reasons, its leading enhanced status code (if any) as a field.
pub(crate) fn local(text: impl Into<String>) -> Detail {
    let text = text.into();
    match text.split_once(' ') {
        Some((code, rest)) if EnhancedCode::parse(code).is_some() => Detail::local(code, rest),
        _ => Detail::note(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_status_becomes_a_field() {
        let d = local("4.4.1 connect to x[192.0.2.1]:25 failed");
        assert_eq!(d.status_for(b'4'), "4.4.1");
        assert_eq!(d.text, "connect to x[192.0.2.1]:25 failed");
        assert_eq!(d.to_string(), "4.4.1 connect to x[192.0.2.1]:25 failed");
        assert_eq!(local("delivered to /m").status, None);
    }
}
