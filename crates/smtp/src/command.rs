//! The SMTP command grammar, RFC 5321 §4.1 plus the ESMTP parameters Postern supports.
//!
//! # Standards
//! RFC 5321 §4.1 (commands), RFC 1870 (SIZE), RFC 6152 (BODY), RFC 6531 (SMTPUTF8),
//! RFC 3030 (BDAT), RFC 3461 §4 (DSN parameters: RET, ENVID, NOTIFY, ORCPT, and xtext),
//! RFC 8689 §4 (the REQUIRETLS MAIL parameter, which takes no value).
//!
//! # Security
//! DSN parameter values come back to the sender in bounces and go onward to the next
//! hop, so they are checked here once: xtext must be well formed and must decode to
//! printable US-ASCII (no CR, LF or NUL can reach a header), ENVID is at most 100
//! characters and ORCPT at most 500, the limits RFC 3461 §5.4 asks servers to accept.

use std::fmt;

use crate::address::{self, AddressError, ForwardPath, ReversePath};
use crate::reply::Reply;

use crate::dsn::envid;
pub use crate::dsn::{Notify, Orcpt, OrcptAddress, Ret, Xtext, XtextField};

/// RFC 6152 body types. BINARYMIME is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyType {
    #[default]
    SevenBit,
    EightBitMime,
}

impl BodyType {
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
        }
    }
}

/// MAIL FROM parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 SIZE=: what the client says the message will be.
    pub size: Option<u64>,
    pub body: Option<BodyType>,
    /// RFC 6531 SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3461 §4.3 RET=: how much of the message a failure report returns.
    pub ret: Option<Ret>,
    /// RFC 3461 §4.4 ENVID=: the sender's identifier for this transaction.
    pub envid: Option<Xtext>,
    /// RFC 8689 REQUIRETLS: the message may only travel over authenticated TLS. The
    /// parser accepts it anywhere; the session refuses it outside TLS.
    pub requiretls: bool,
}

/// RCPT TO parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// RFC 3461 §4.1 NOTIFY=: which reports the sender wants for this recipient.
    pub notify: Option<Notify>,
    /// RFC 3461 §4.2 ORCPT=: the recipient's address as the sender first gave it.
    pub orcpt: Option<Orcpt>,
}

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: ForwardPath,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy,
    Expn,
    Help,
    StartTls,
    /// Recognised but not offered (AUTH, ETRN, TURN, ...): `502 5.5.1`.
    NotImplemented(&'static str),
}

impl Command {
    /// The verb, for logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy => "VRFY",
            Command::Expn => "EXPN",
            Command::Help => "HELP",
            Command::StartTls => "STARTTLS",
            Command::NotImplemented(v) => v,
        }
    }
}

/// Why a command line could not be parsed; each maps to exactly one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    Unrecognized,
    Syntax(&'static str),
    BadSender(AddressError),
    BadRecipient(AddressError),
    UnknownParameter(String),
    BadParameter(&'static str),
    NulByte,
    BareCr,
    InvalidUtf8,
    NonAscii,
    LineTooLong,
}

impl CommandError {
    pub fn reply(&self) -> Reply {
        match self {
            CommandError::Unrecognized => Reply::new(500, "5.5.1", "Command not recognized"),
            CommandError::Syntax(s) => Reply::new(501, "5.5.4", format!("Syntax: {s}")),
            CommandError::BadSender(e) => {
                Reply::new(501, "5.1.7", format!("Bad sender address syntax: {e}"))
            }
            CommandError::BadRecipient(e) => {
                Reply::new(501, "5.1.3", format!("Bad recipient address syntax: {e}"))
            }
            CommandError::UnknownParameter(p) => {
                // Only the keyword is echoed, and only if it is short and printable.
                let p: String = p.chars().take(32).collect();
                Reply::new(555, "5.5.4", format!("Unsupported parameter {p}"))
            }
            CommandError::BadParameter(s) => {
                Reply::new(501, "5.5.4", format!("Invalid parameter: {s}"))
            }
            CommandError::NulByte => Reply::new(500, "5.5.2", "NUL character in command"),
            CommandError::BareCr => Reply::new(500, "5.5.2", "Bare <CR> in command"),
            CommandError::InvalidUtf8 => Reply::new(500, "5.5.2", "Invalid UTF-8 in command"),
            CommandError::NonAscii => Reply::new(
                500,
                "5.5.2",
                "Non-ASCII characters are allowed only in addresses, with SMTPUTF8",
            ),
            CommandError::LineTooLong => Reply::new(500, "5.5.2", "Line too long"),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reply())
    }
}

/// Parse one command line, without its line ending.
pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
    if line.contains(&0) {
        return Err(CommandError::NulByte);
    }
    if line.contains(&b'\r') {
        return Err(CommandError::BareCr);
    }
    let line = std::str::from_utf8(line).map_err(|_| CommandError::InvalidUtf8)?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    if !verb.is_ascii() {
        return Err(CommandError::Unrecognized);
    }
    let verb_uc = verb.to_ascii_uppercase();
    if !matches!(verb_uc.as_str(), "MAIL" | "RCPT") && !rest.is_ascii() {
        return Err(CommandError::NonAscii);
    }
    let no_args = |c: Command, usage: &'static str| {
        if rest.trim().is_empty() {
            Ok(c)
        } else {
            Err(CommandError::Syntax(usage))
        }
    };
    match verb_uc.as_str() {
        "EHLO" => hello(rest, "EHLO hostname").map(Command::Ehlo),
        "HELO" => hello(rest, "HELO hostname").map(Command::Helo),
        "MAIL" => mail(rest),
        "RCPT" => rcpt(rest),
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => bdat(rest),
        "RSET" => no_args(Command::Rset, "RSET"),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "VRFY" => {
            if rest.trim().is_empty() {
                Err(CommandError::Syntax("VRFY address"))
            } else {
                Ok(Command::Vrfy)
            }
        }
        "EXPN" => Ok(Command::Expn),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        "AUTH" => Ok(Command::NotImplemented("AUTH")),
        "ETRN" => Ok(Command::NotImplemented("ETRN")),
        "TURN" => Ok(Command::NotImplemented("TURN")),
        "ATRN" => Ok(Command::NotImplemented("ATRN")),
        "BURL" => Ok(Command::NotImplemented("BURL")),
        "SEND" | "SOML" | "SAML" => Ok(Command::NotImplemented("SEND")),
        _ => Err(CommandError::Unrecognized),
    }
}

fn hello(rest: &str, usage: &'static str) -> Result<String, CommandError> {
    // Lenient, as deployed MTAs are: the first word is the client's name, whatever its
    // syntax (Windows hosts send underscores). It is sanitised where it is written out.
    match rest.split_whitespace().next() {
        Some(name) if name.len() <= 255 => Ok(name.to_string()),
        Some(_) => Err(CommandError::Syntax("hostname too long")),
        None => Err(CommandError::Syntax(usage)),
    }
}

fn strip_keyword<'a>(rest: &'a str, kw: &str) -> Option<&'a str> {
    match rest.get(..kw.len()) {
        Some(head) if head.eq_ignore_ascii_case(kw) => Some(&rest[kw.len()..]),
        _ => None,
    }
}

fn params(s: &str) -> Result<Vec<(String, Option<&str>)>, CommandError> {
    if !s.is_empty() && !s.starts_with(' ') {
        return Err(CommandError::Syntax(
            "parameters must follow the address after a space",
        ));
    }
    let mut out = Vec::new();
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(CommandError::BadParameter("bad parameter keyword"));
        }
        let k = k.to_ascii_uppercase();
        // Only ORCPT may carry UTF-8 (RFC 6533 §3 utf-8-addr-unitext); its parser
        // checks it.
        if !v.is_none_or(str::is_ascii) && k != "ORCPT" {
            return Err(CommandError::BadParameter("non-ASCII parameter"));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(CommandError::BadParameter("parameter given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn mail(rest: &str) -> Result<Command, CommandError> {
    let path = strip_keyword(rest, "FROM:").ok_or(CommandError::Syntax("MAIL FROM:<address>"))?;
    let (from, tail) = address::parse_reverse_path(path).map_err(CommandError::BadSender)?;
    let mut p = MailParams::default();
    for (k, v) in params(tail)? {
        match (k.as_str(), v) {
            ("SIZE", Some(v)) => {
                if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(CommandError::BadParameter(
                        "SIZE must be a number of octets",
                    ));
                }
                p.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") => {
                p.body = Some(BodyType::SevenBit)
            }
            ("BODY", Some(v)) if v.eq_ignore_ascii_case("8BITMIME") => {
                p.body = Some(BodyType::EightBitMime)
            }
            ("BODY", _) => return Err(CommandError::BadParameter("BODY must be 7BIT or 8BITMIME")),
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("SMTPUTF8", Some(_)) => {
                return Err(CommandError::BadParameter("SMTPUTF8 takes no value"));
            }
            ("RET", v) => {
                p.ret = Some(
                    v.and_then(Ret::parse)
                        .ok_or(CommandError::BadParameter("RET must be FULL or HDRS"))?,
                )
            }
            ("ENVID", Some(v)) => p.envid = Some(envid(v)?),
            ("ENVID", None) => return Err(CommandError::BadParameter("ENVID needs a value")),
            ("REQUIRETLS", None) => p.requiretls = true,
            ("REQUIRETLS", Some(_)) => {
                return Err(CommandError::BadParameter("REQUIRETLS takes no value"));
            }
            _ => return Err(CommandError::UnknownParameter(k)),
        }
    }
    Ok(Command::Mail { from, params: p })
}

fn rcpt(rest: &str) -> Result<Command, CommandError> {
    let path = strip_keyword(rest, "TO:").ok_or(CommandError::Syntax("RCPT TO:<address>"))?;
    let (to, tail) = address::parse_forward_path(path).map_err(CommandError::BadRecipient)?;
    let mut p = RcptParams::default();
    for (k, v) in params(tail)? {
        match (k.as_str(), v) {
            ("NOTIFY", Some(v)) => {
                p.notify = Some(Notify::parse(v).map_err(CommandError::BadParameter)?)
            }
            ("ORCPT", Some(v)) => {
                p.orcpt = Some(Orcpt::parse(v).map_err(CommandError::BadParameter)?)
            }
            ("NOTIFY", None) => return Err(CommandError::BadParameter("NOTIFY needs a value")),
            ("ORCPT", None) => return Err(CommandError::BadParameter("ORCPT needs a value")),
            _ => return Err(CommandError::UnknownParameter(k)),
        }
    }
    Ok(Command::Rcpt { to, params: p })
}

fn bdat(rest: &str) -> Result<Command, CommandError> {
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let usage = "BDAT chunk-size [LAST]";
    let size = words.next().ok_or(CommandError::Syntax(usage))?;
    if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::Syntax(usage));
    }
    let size: u64 = size.parse().map_err(|_| CommandError::Syntax(usage))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(CommandError::Syntax(usage)),
    };
    if words.next().is_some() {
        return Err(CommandError::Syntax(usage));
    }
    Ok(Command::Bdat { size, last })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Address, Domain};

    fn p(s: &str) -> Result<Command, CommandError> {
        parse(s.as_bytes())
    }

    #[test]
    fn simple_commands_any_case() {
        assert_eq!(
            p("ehlo client.example").unwrap(),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(p("HELO x").unwrap(), Command::Helo("x".into()));
        assert_eq!(p("DATA").unwrap(), Command::Data);
        assert_eq!(p("rset").unwrap(), Command::Rset);
        assert_eq!(p("NOOP anything").unwrap(), Command::Noop);
        assert_eq!(p("QUIT").unwrap(), Command::Quit);
        assert_eq!(p("StartTLS").unwrap(), Command::StartTls);
        assert_eq!(p("VRFY bob").unwrap(), Command::Vrfy);
        assert_eq!(p("HELP").unwrap(), Command::Help);
        assert_eq!(p("AUTH PLAIN xx").unwrap(), Command::NotImplemented("AUTH"));
    }

    #[test]
    fn mail_from_with_params() {
        let c = p("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8").unwrap();
        let Command::Mail { from, params } = c else {
            panic!()
        };
        assert_eq!(
            from,
            ReversePath::Address(Address {
                local: "a".into(),
                domain: Domain::Name("b.example".into())
            })
        );
        assert_eq!(params.size, Some(1000));
        assert_eq!(params.body, Some(BodyType::EightBitMime));
        assert!(params.smtputf8);
        assert!(matches!(
            p("mail from: <>").unwrap(),
            Command::Mail {
                from: ReversePath::Null,
                ..
            }
        ));
    }

    #[test]
    fn mail_errors() {
        assert_eq!(p("MAIL <a@b>").unwrap_err().reply().code, 501);
        assert_eq!(
            p("MAIL FROM:a@b").unwrap_err().reply().status,
            Some("5.1.7")
        );
        assert_eq!(p("MAIL FROM:<a@b> FOO=1").unwrap_err().reply().code, 555);
        assert_eq!(p("MAIL FROM:<a@b> SIZE=x").unwrap_err().reply().code, 501);
        assert_eq!(
            p("MAIL FROM:<a@b> SIZE=1 SIZE=2").unwrap_err().reply().code,
            501
        );
        assert_eq!(p("MAIL FROM:<a@b>SIZE=1").unwrap_err().reply().code, 501);
        assert_eq!(
            p("MAIL FROM:<a@b> BODY=BINARYMIME")
                .unwrap_err()
                .reply()
                .code,
            501
        );
        // Huge SIZE values saturate rather than overflow.
        let Command::Mail { params, .. } = p("MAIL FROM:<a@b> SIZE=99999999999999999999").unwrap()
        else {
            panic!()
        };
        assert_eq!(params.size, Some(u64::MAX));
    }

    #[test]
    fn rcpt_to() {
        assert!(matches!(
            p("RCPT TO:<postmaster>").unwrap(),
            Command::Rcpt {
                to: ForwardPath::Postmaster,
                ..
            }
        ));
        assert_eq!(p("RCPT TO:<a@b> FOO=1").unwrap_err().reply().code, 555);
        assert_eq!(
            p("RCPT TO:<a@@b>").unwrap_err().reply().status,
            Some("5.1.3")
        );
        assert_eq!(p("RCPT <a@b>").unwrap_err().reply().code, 501);
    }

    #[test]
    fn dsn_mail_parameters() {
        let Command::Mail { params, .. } =
            p("MAIL FROM:<a@b> RET=hdrs ENVID=QQ314159+2Bx").unwrap()
        else {
            panic!()
        };
        assert_eq!(params.ret, Some(Ret::Hdrs));
        let envid = params.envid.unwrap();
        assert_eq!(envid.as_str(), "QQ314159+2Bx");
        assert_eq!(envid.decoded(), "QQ314159+x");
        let bad = |s: &str| p(s).unwrap_err().reply().to_string();
        assert_eq!(
            bad("MAIL FROM:<a@b> RET=BODY"),
            "501 5.5.4 Invalid parameter: RET must be FULL or HDRS"
        );
        assert!(bad("MAIL FROM:<a@b> RET").contains("RET must be FULL or HDRS"));
        assert!(bad("MAIL FROM:<a@b> ENVID").contains("ENVID needs a value"));
        assert!(bad("MAIL FROM:<a@b> ENVID=").contains("ENVID must not be empty"));
        assert!(bad("MAIL FROM:<a@b> ENVID=a+2b").contains("two upper-case hex digits"));
        assert!(bad("MAIL FROM:<a@b> ENVID=a+2").contains("two upper-case hex digits"));
        assert!(bad("MAIL FROM:<a@b> ENVID=a+0D+0A").contains("printable US-ASCII"));
        assert!(
            bad(&format!("MAIL FROM:<a@b> ENVID={}", "x".repeat(101))).contains("longer than 100")
        );
        assert!(p(&format!("MAIL FROM:<a@b> ENVID={}", "x".repeat(100))).is_ok());
        assert_eq!(
            p("MAIL FROM:<a@b> RET=FULL RET=HDRS")
                .unwrap_err()
                .reply()
                .code,
            501
        );
    }

    #[test]
    fn requiretls_parameter() {
        let Command::Mail { params, .. } = p("MAIL FROM:<a@b> requiretls SIZE=10").unwrap() else {
            panic!()
        };
        assert!(params.requiretls);
        let Command::Mail { params, .. } = p("MAIL FROM:<a@b>").unwrap() else {
            panic!()
        };
        assert!(!params.requiretls);
        let bad = |s: &str| p(s).unwrap_err().reply().to_string();
        assert_eq!(
            bad("MAIL FROM:<a@b> REQUIRETLS=yes"),
            "501 5.5.4 Invalid parameter: REQUIRETLS takes no value"
        );
        assert_eq!(
            bad("MAIL FROM:<a@b> REQUIRETLS="),
            "501 5.5.4 Invalid parameter: REQUIRETLS takes no value"
        );
        assert_eq!(
            bad("MAIL FROM:<a@b> REQUIRETLS requiretls"),
            "501 5.5.4 Invalid parameter: parameter given twice"
        );
        // Not a RCPT parameter.
        assert_eq!(p("RCPT TO:<a@b> REQUIRETLS").unwrap_err().reply().code, 555);
    }

    #[test]
    fn dsn_rcpt_parameters() {
        let rcpt = |s: &str| match p(s) {
            Ok(Command::Rcpt { params, .. }) => Ok(params),
            Ok(c) => panic!("{c:?}"),
            Err(e) => Err(e.reply().to_string()),
        };
        let r = rcpt("RCPT TO:<a@b> notify=Failure,delay ORCPT=rfc822;a+2Bx@b").unwrap();
        assert_eq!(
            r.notify,
            Some(Notify {
                success: false,
                failure: true,
                delay: true
            })
        );
        assert_eq!(r.notify.unwrap().to_string(), "FAILURE,DELAY");
        let o = r.orcpt.unwrap();
        assert_eq!(o.to_string(), "rfc822;a+2Bx@b");
        assert_eq!(o.address.decoded(), "a+x@b");
        let never = rcpt("RCPT TO:<a@b> NOTIFY=never").unwrap().notify.unwrap();
        assert!(never.is_never());
        assert_eq!(never.to_string(), "NEVER");
        for (line, text) in [
            ("RCPT TO:<a@b> NOTIFY=NEVER,FAILURE", "cannot be combined"),
            ("RCPT TO:<a@b> NOTIFY=FAILURE,NEVER", "cannot be combined"),
            ("RCPT TO:<a@b> NOTIFY=ALWAYS", "NOTIFY must be NEVER or"),
            ("RCPT TO:<a@b> NOTIFY=", "NOTIFY must be NEVER or"),
            ("RCPT TO:<a@b> NOTIFY=SUCCESS,", "NOTIFY must be NEVER or"),
            ("RCPT TO:<a@b> NOTIFY=DELAY,delay", "same event twice"),
            ("RCPT TO:<a@b> NOTIFY", "NOTIFY needs a value"),
            ("RCPT TO:<a@b> ORCPT=a@b", "ORCPT must be addr-type;address"),
            (
                "RCPT TO:<a@b> ORCPT=;a@b",
                "ORCPT must be addr-type;address",
            ),
            ("RCPT TO:<a@b> ORCPT=rfc822;", "no address after"),
            (
                "RCPT TO:<a@b> ORCPT=rfc822;a+zz",
                "two upper-case hex digits",
            ),
            ("RCPT TO:<a@b> ORCPT=rfc822;a+00", "printable US-ASCII"),
            ("RCPT TO:<a@b> ORCPT=rfc822;a=b", "may appear unencoded"),
        ] {
            let got = rcpt(line).unwrap_err();
            assert!(got.starts_with("501 5.5.4 Invalid parameter: "), "{got}");
            assert!(got.contains(text), "{line}: {got}");
        }
        let long = format!("RCPT TO:<a@b> ORCPT=rfc822;{}", "x".repeat(500));
        assert!(rcpt(&long).unwrap_err().contains("longer than 500"));
    }

    #[test]
    fn xtext_round_trip() {
        for s in ["plain", "a+b=c", "sp ace", "~!"] {
            let x = Xtext::encode(s);
            assert_eq!(Xtext::parse(x.as_str(), XtextField::Envid), Ok(x.clone()));
            assert_eq!(x.decoded(), s);
        }
        assert_eq!(Xtext::encode("a+b=c d").as_str(), "a+2Bb+3Dc+20d");
        // Every byte string: an error or a value, never a panic.
        for b in 0u8..=255 {
            let s = format!("+{}", b as char);
            let _ = Xtext::parse(&s, XtextField::Orcpt);
        }
    }

    #[test]
    fn bdat() {
        assert_eq!(
            p("BDAT 100").unwrap(),
            Command::Bdat {
                size: 100,
                last: false
            }
        );
        assert_eq!(
            p("BDAT 0 LAST").unwrap(),
            Command::Bdat {
                size: 0,
                last: true
            }
        );
        assert!(p("BDAT").is_err());
        assert!(p("BDAT -1").is_err());
        assert!(p("BDAT 10 FIRST").is_err());
        assert!(p("BDAT 99999999999999999999").is_err());
    }

    #[test]
    fn hostile_bytes() {
        assert_eq!(parse(b"NOOP \0").unwrap_err(), CommandError::NulByte);
        assert_eq!(parse(b"NOOP a\rb").unwrap_err(), CommandError::BareCr);
        assert_eq!(parse(b"NOOP \xff").unwrap_err(), CommandError::InvalidUtf8);
        assert_eq!(p("EHLO h\u{e9}llo").unwrap_err(), CommandError::NonAscii);
        assert_eq!(p("\u{e9}HLO x").unwrap_err(), CommandError::Unrecognized);
        assert_eq!(p("").unwrap_err(), CommandError::Unrecognized);
        assert_eq!(p("EHLO").unwrap_err().reply().code, 501);
        assert_eq!(p("DATA now").unwrap_err().reply().code, 501);
        assert_eq!(p("GET / HTTP/1.1").unwrap_err(), CommandError::Unrecognized);
    }

    #[test]
    fn multibyte_text_where_keywords_are_expected_never_panics() {
        for s in [
            "MAIL \u{e9}\u{e9}\u{e9}",
            "RCPT \u{e9}\u{e9}",
            "RCPT TO:<\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}>",
            "RCPT TO:<a@[\u{e9}\u{e9}\u{e9}]>",
        ] {
            assert!(p(s).is_err(), "{s}");
        }
    }

    #[test]
    fn utf8_address_is_parsed_for_the_session_to_judge() {
        let Command::Mail {
            from: ReversePath::Address(a),
            ..
        } = p("MAIL FROM:<j\u{f6}rg@b.example>").unwrap()
        else {
            panic!()
        };
        assert!(!a.is_ascii());
    }
}
