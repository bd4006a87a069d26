//! Configuration errors that point at the operator's file: `FILE:LINE:COL: key: problem`.

use std::fmt;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in a configuration file, located for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted key path, such as `listener[0].address`; `(syntax)` for TOML syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, self.key, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a key in the configuration: `listener[1].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath(Vec::new())
    }
    /// `KeyPath::of("relay").key("local_domains")`.
    pub fn of(key: &str) -> KeyPath {
        KeyPath::root().key(key)
    }
    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_string()));
        p
    }
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Semantic problems found after a section parsed, each tied to the key it is about.
#[derive(Debug, Default)]
pub struct Problems {
    items: Vec<(KeyPath, String)>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }
    pub fn push(&mut self, at: KeyPath, message: impl Into<String>) {
        self.items.push((at, message.into()));
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Turn the collected problems into located errors against `source`.
    pub fn locate_in(self, file: &str, source: &str) -> Vec<ConfigError> {
        let table = DeTable::parse(source).ok();
        self.items
            .into_iter()
            .map(|(path, message)| {
                let span = table
                    .as_ref()
                    .and_then(|t| find_span(t, &path.0))
                    .unwrap_or(0..0);
                let (line, col) = line_col(source, span.start);
                ConfigError {
                    file: file.to_string(),
                    line,
                    col,
                    key: path.to_string(),
                    message,
                }
            })
            .collect()
    }
}

/// Deserialize `source` into `T`, turning any serde or syntax error into a located
/// [`ConfigError`] with the key it concerns.
pub fn parse_toml<T: DeserializeOwned>(file: &str, source: &str) -> Result<T, ConfigError> {
    toml::from_str::<T>(source).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let (line, col) = line_col(source, offset);
        let key = match DeTable::parse(source) {
            Ok(t) => {
                let mut path = Vec::new();
                key_at(t.get_ref(), offset, &mut path);
                if path.is_empty() {
                    "(top level)".to_string()
                } else {
                    KeyPath(path).to_string()
                }
            }
            Err(_) => "(syntax)".to_string(),
        };
        ConfigError {
            file: file.to_string(),
            line,
            col,
            key,
            message: e.message().trim().replace('\n', " "),
        }
    })
}

/// The `(line, column)` (1-based) of the key `path` in `source`, or of its nearest
/// existing parent.
pub fn locate(source: &str, path: &KeyPath) -> (usize, usize) {
    let span = DeTable::parse(source)
        .ok()
        .and_then(|t| find_span(&t, &path.0))
        .unwrap_or(0..0);
    line_col(source, span.start)
}

fn find_span(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best = None;
    let mut cur: Option<&DeValue<'_>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    for seg in path {
        match seg {
            Seg::Key(k) => {
                let t = table.or_else(|| cur.and_then(|v| v.as_table()))?;
                let (key, val) = t.iter().find(|(key, _)| key.get_ref() == k)?;
                best = Some(key.span());
                cur = Some(val.get_ref());
                table = None;
            }
            Seg::Index(i) => {
                let arr = cur.and_then(|v| v.as_array())?;
                let item = arr.get(*i)?;
                best = Some(item.span());
                cur = Some(item.get_ref());
                table = None;
            }
        }
    }
    best
}

/// Find the key path whose key or scalar value covers `offset`. Table and array-of-table
/// spans cover only their headers, so every branch is searched, not just the one whose
/// span contains the offset.
fn key_at(t: &DeTable<'_>, offset: usize, path: &mut Vec<Seg>) -> bool {
    for (k, v) in t.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        if value_at(v, offset, path) || k.span().contains(&offset) {
            return true;
        }
        path.pop();
    }
    false
}

fn value_at(v: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<Seg>) -> bool {
    if let Some(t) = v.get_ref().as_table() {
        key_at(t, offset, path) || v.span().contains(&offset)
    } else if let Some(a) = v.get_ref().as_array() {
        for (i, item) in a.iter().enumerate() {
            path.push(Seg::Index(i));
            if value_at(item, offset, path) {
                return true;
            }
            path.pop();
        }
        v.span().contains(&offset)
    } else {
        v.span().contains(&offset)
    }
}

fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct L {
        address: String,
        #[serde(default)]
        max: Option<crate::Size>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct C {
        #[serde(default)]
        listener: Vec<L>,
    }

    #[test]
    fn serde_errors_name_line_col_and_key() {
        let src = "[[listener]]\naddress = \"a\"\n\n[[listener]]\naddress = \"b\"\nmax = \"12 parsecs\"\n";
        let e = parse_toml::<C>("p.toml", src).unwrap_err();
        assert_eq!((e.line, e.col), (6, 7), "{e}");
        assert_eq!(e.key, "listener[1].max");
        assert!(e.message.contains("parsecs"), "{e}");
        assert!(e.to_string().starts_with("p.toml:6:7: listener[1].max: "));
    }

    #[test]
    fn unknown_keys_are_named() {
        let src = "[[listener]]\naddress = \"a\"\nadress = \"b\"\n";
        let e = parse_toml::<C>("p.toml", src).unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.key, "listener[0].adress");
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn syntax_errors() {
        let e = parse_toml::<C>("p.toml", "[[listener]\n").unwrap_err();
        assert_eq!(e.key, "(syntax)");
        assert_eq!(e.line, 1);
    }

    #[test]
    fn problems_are_located() {
        let src = "[[listener]]\naddress = \"a\"\n[[listener]]\n  address = \"b\"\n";
        let mut p = Problems::new();
        p.push(KeyPath::of("listener").index(1).key("address"), "bad");
        let errs = p.locate_in("f", src);
        assert_eq!(errs[0].to_string(), "f:4:3: listener[1].address: bad");
    }
}
