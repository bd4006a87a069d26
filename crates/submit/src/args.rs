//! The command line: `postern sendmail` (clap) and the classic sendmail(8) options of the
//! binary invoked as `sendmail` (getopt style: `-ti`, `-fSENDER` or `-f SENDER`).
//!
//! # Standards
//! The traditional sendmail(8) command line: `-t -i -oi -f -r -F -bm`; the other
//! options that take a value (`-B -C -e -h -L -N -O -R -V -X`, every `-o` but `-oi`) are
//! accepted and have no effect: the daemon decides those things.

use crate::error::UsageError;

/// `postern sendmail`: send one message (read from standard input) through the local daemon.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(after_help = "\
Exit status: 0 accepted by the daemon; 64 usage; 65 sender or message refused (5xx);
69 other 5xx (e.g. a recipient refused); 74 stdin unreadable; 75 try again later
(no connection, 4xx); 78 configuration problem. Invoked as `sendmail` (the Debian
package links /usr/sbin/sendmail to postern), the classic options are accepted as well.")]
pub struct SendmailArgs {
    /// Also take recipients from the To:, Cc: and Bcc: headers (Bcc: is always removed).
    #[arg(short = 't')]
    pub from_headers: bool,
    /// A line with only "." does not end the message (without -i it does).
    #[arg(short = 'i')]
    pub ignore_dots: bool,
    /// Classic sendmail option: -oi is -i; every other -oX is accepted and ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// Envelope sender and From: address (default: USER@hostname; "<>" for none).
    #[arg(short = 'f', short_alias = 'r', value_name = "SENDER")]
    pub sender: Option<String>,
    /// Full name for a From: header this command adds.
    #[arg(short = 'F', value_name = "NAME")]
    pub full_name: Option<String>,
    /// Mode: only -bm (deliver mail, the default) is supported.
    #[arg(short = 'b', value_name = "MODE")]
    pub mode: Option<String>,
    /// Recipient addresses (unqualified names get @hostname).
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
}

/// What the command line asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub from_headers: bool,
    pub ignore_dots: bool,
    pub sender: Option<String>,
    pub full_name: Option<String>,
    pub recipients: Vec<String>,
}

impl Options {
    /// The options of `postern sendmail` (clap already did the parsing).
    pub fn from_args(args: SendmailArgs) -> Result<Options, UsageError> {
        let mut o = Options {
            from_headers: args.from_headers,
            ignore_dots: args.ignore_dots,
            sender: args.sender,
            full_name: args.full_name,
            recipients: args.recipients,
        };
        for v in &args.options {
            // `-o` never fails: unknown options are ignored.
            apply_value(&mut o, 'o', v)?;
        }
        if let Some(m) = &args.mode {
            apply_value(&mut o, 'b', m)?;
        }
        Ok(o)
    }
}

/// Parse a classic sendmail command line (getopt style: `-ti`, `-fSENDER` or `-f SENDER`).
pub fn parse_classic(args: &[String]) -> Result<Options, UsageError> {
    let mut o = Options::default();
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "--" {
            o.recipients.extend(rest.cloned());
            break;
        }
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(a.clone());
            continue;
        };
        let mut chars = flags.chars();
        while let Some(c) = chars.next() {
            match c {
                't' => o.from_headers = true,
                'i' => o.ignore_dots = true,
                // verbose, initial submission, "me too", no aliasing: nothing to change here
                'v' | 'U' | 'm' | 'n' => {}
                'f' | 'r' | 'F' | 'o' | 'b' | 'B' | 'C' | 'e' | 'h' | 'L' | 'N' | 'O' | 'R'
                | 'V' | 'X' => {
                    let attached = chars.as_str();
                    let value = if !attached.is_empty() {
                        attached.to_string()
                    } else if let Some(next) = rest.next() {
                        next.clone()
                    } else {
                        return Err(UsageError::MissingValue(c));
                    };
                    apply_value(&mut o, c, &value)?;
                    break;
                }
                'q' => return Err(UsageError::QueueRun),
                other => return Err(UsageError::UnknownOption(other)),
            }
        }
    }
    Ok(o)
}

/// An option with a value. `-B`, `-C`, `-e`, `-h`, `-L`, `-N`, `-O`, `-R`, `-V`, `-X` and
/// every `-o` but `-oi` are accepted and have no effect (the daemon decides those things).
fn apply_value(o: &mut Options, c: char, v: &str) -> Result<(), UsageError> {
    match c {
        'f' | 'r' => o.sender = Some(v.to_string()),
        'F' => o.full_name = Some(v.to_string()),
        'o' if v == "i" => o.ignore_dots = true,
        'b' => match v {
            "m" => {}
            "d" | "D" => return Err(UsageError::Daemon),
            "s" => return Err(UsageError::SmtpOnStdin),
            "p" => return Err(UsageError::ListQueue),
            "i" => return Err(UsageError::Newaliases),
            other => return Err(UsageError::Mode(other.to_string())),
        },
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn classic_flags() {
        let o = parse_classic(&s(&[
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            "-odi",
            "root",
        ]))
        .unwrap();
        assert_eq!(o.full_name.as_deref(), Some("CronDaemon"));
        assert!(o.ignore_dots && !o.from_headers);
        assert_eq!(o.recipients, s(&["root"]));
        let o = parse_classic(&s(&["-ti", "-f", "a@b", "-oi", "-bm", "--", "-x@y"])).unwrap();
        assert!(o.from_headers && o.ignore_dots);
        assert_eq!(o.sender.as_deref(), Some("a@b"));
        assert_eq!(o.recipients, s(&["-x@y"]));
        assert!(
            parse_classic(&s(&["-bd"]))
                .unwrap_err()
                .to_string()
                .contains("postern serve")
        );
        assert!(parse_classic(&s(&["-bs"])).is_err());
        assert!(
            parse_classic(&s(&["-k"]))
                .unwrap_err()
                .to_string()
                .contains("-k")
        );
        assert!(parse_classic(&s(&["-f"])).is_err());
    }

    #[test]
    fn value_after_multibyte_flag_text_is_kept_whole() {
        let o = parse_classic(&s(&["-FJürgen Groß", "-tfü@x.test"])).unwrap();
        assert_eq!(o.full_name.as_deref(), Some("Jürgen Groß"));
        assert_eq!(o.sender.as_deref(), Some("ü@x.test"));
        assert!(o.from_headers);
    }

    #[test]
    fn clap_options_map_like_classic_ones() {
        let o = Options::from_args(SendmailArgs {
            options: s(&["i", "em"]),
            mode: Some("m".into()),
            ..SendmailArgs::default()
        })
        .unwrap();
        assert!(o.ignore_dots);
        let e = Options::from_args(SendmailArgs {
            mode: Some("p".into()),
            ..SendmailArgs::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("postern queue list"));
    }
}
