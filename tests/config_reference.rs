//! Defaults in one place (#10): `config/postern.toml` and `docs/configuration.md` are checked
//! against the configuration types, in both directions.
//!
//! - Every key the types read is documented: a row in the key table under the section's
//!   heading in `docs/configuration.md`, and a line (set, or commented out) in the
//!   section of `config/postern.toml`.
//! - No documented key is one the code does not read: a stale or misspelt row or key
//!   fails.
//! - Every documented default is the real one. Defaults are compared through the types
//!   themselves (`"5m"` and `"300s"` are the same duration), never as text.
//!
//! How the code's keys are found: serde's `deny_unknown_fields` error for an unknown key
//! lists every field of the struct ("expected one of `a`, `b`"), so the test puts an
//! unknown key into each section and reads the list. The code's default of a key is what
//! the types put there when the key is left out of the reference config (`Config` is
//! `Deserialize` and `Serialize`).
//!
//! # Adding a key
//!
//! 1. Add the field to its section's struct with `#[serde(default = ...)]` (or no default
//!    when the key is required).
//! 2. In `docs/configuration.md`, add a row to the table under the section's heading:
//!    ``| `key` | type | DEFAULT | meaning |``. DEFAULT starts with the default written as
//!    a TOML value in backticks (`` `"5m"` ``, `` `[]` ``, `` `true` ``) when the code has
//!    one; it contains "required" when the key has no default; and it holds no TOML value
//!    in its first backticks when the default is computed or "none" (``the system host
//!    name``, ``none: `server.hostname` ``).
//! 3. In `config/postern.toml`, add the key to its section, set to its default. An example
//!    value instead of the default needs `Default: VALUE` in the comment right above it. A
//!    key that is off when left out may be shown commented out (`# key = "4h"`).
//!
//! A new section needs a `## [name]` (table) or `## [[name]]` (array of tables) heading
//! in `docs/configuration.md`, directly followed by its key table, and the section in
//! `config/postern.toml`.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use postern::Config;
use toml::Value;

const DOCS: &str = "docs/configuration.md";
const REFERENCE: &str = "config/postern.toml";
/// A key no section has, to make serde list the fields of a section.
const PROBE: &str = "zz_unknown_probe_key";

fn read(p: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(p);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// The code's side.

/// Deserialize a TOML value as the whole configuration (no validation, no file access).
fn parse(v: &Value) -> Result<Config, String> {
    v.clone().try_into::<Config>().map_err(|e| e.to_string())
}

/// A document holding only `inner` at `path`; `arrays` says which sections are arrays.
fn nest(path: &[&str], arrays: &BTreeSet<String>, inner: toml::Table) -> Value {
    let mut v = Value::Table(inner);
    for i in (0..path.len()).rev() {
        if arrays.contains(&path[..=i].join(".")) {
            v = Value::Array(vec![v]);
        }
        let mut t = toml::Table::new();
        t.insert(path[i].to_string(), v);
        v = Value::Table(t);
    }
    v
}

/// The keys the types read in the section at `path` (empty: the top level).
fn code_fields(path: &[&str], arrays: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    let mut inner = toml::Table::new();
    inner.insert(PROBE.into(), Value::Integer(0));
    let msg = match parse(&nest(path, arrays, inner)) {
        Ok(_) => return Err("the section accepts unknown keys (no deny_unknown_fields)".into()),
        Err(m) => m,
    };
    let Some(at) = msg.find(&format!("unknown field `{PROBE}`")) else {
        return Err(format!("not a section the code reads: {}", msg.trim()));
    };
    // "unknown field `PROBE`, expected one of `a`, `b`" and then "\nin `section`".
    let rest = msg[at + PROBE.len() + 16..].lines().next().unwrap_or("");
    if rest.contains("there are no fields") {
        return Ok(BTreeSet::new());
    }
    Ok(rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect())
}

/// Where one key sits in the reference: the section path, which element of each array
/// section on the way (the last one's index is `index`, others 0), and the key.
#[derive(Debug, Clone)]
struct Loc {
    section: Vec<String>,
    index: usize,
    key: String,
}

impl Loc {
    fn name(&self) -> String {
        format!("[{}] {}", self.section.join("."), self.key)
    }
}

fn table_at<'a>(v: &'a mut Value, loc: &Loc) -> Option<&'a mut toml::Table> {
    let mut cur = v;
    for (i, seg) in loc.section.iter().enumerate() {
        cur = cur.as_table_mut()?.get_mut(seg)?;
        if let Value::Array(a) = cur {
            let idx = if i + 1 == loc.section.len() {
                loc.index
            } else {
                0
            };
            cur = a.get_mut(idx)?;
        }
    }
    cur.as_table_mut()
}

/// What the types make of the reference with `key` set to `value` (or left out): the
/// key's value after a round trip through `Config`, `None` when it is not serialised
/// (an unset `Option`, an empty list the type leaves out).
fn normalized(reference: &Value, loc: &Loc, value: Option<Value>) -> Result<Option<Value>, String> {
    let mut doc = reference.clone();
    let t = table_at(&mut doc, loc).ok_or("section not in the reference")?;
    match value {
        Some(v) => t.insert(loc.key.clone(), v),
        None => t.remove(&loc.key),
    };
    let config = parse(&doc)?;
    let mut back = Value::try_from(&config).map_err(|e| e.to_string())?;
    Ok(table_at(&mut back, loc).and_then(|t| t.remove(&loc.key)))
}

#[derive(Debug, Clone, PartialEq)]
enum CodeDefault {
    /// The key must be given.
    Required,
    /// Left out, it stays unset or computed at run time (or an empty list).
    Unset,
    Value(Value),
}

fn code_default(reference: &Value, loc: &Loc) -> Result<CodeDefault, String> {
    match normalized(reference, loc, None) {
        Err(e) if e.contains("missing field") => Ok(CodeDefault::Required),
        Err(e) => Err(e),
        Ok(None) => Ok(CodeDefault::Unset),
        Ok(Some(v)) => Ok(CodeDefault::Value(v)),
    }
}

/// Whether the documented `literal` is the code's default for the key.
fn is_default(
    reference: &Value,
    loc: &Loc,
    d: &CodeDefault,
    literal: &Value,
) -> Result<bool, String> {
    let n = normalized(reference, loc, Some(literal.clone()))?;
    Ok(match d {
        CodeDefault::Required => false,
        CodeDefault::Unset => n.is_none(),
        CodeDefault::Value(v) => n.as_ref() == Some(v),
    })
}

fn show(d: &CodeDefault) -> String {
    match d {
        CodeDefault::Required => "none (the key is required)".into(),
        CodeDefault::Unset => "none (unset, or computed at run time)".into(),
        CodeDefault::Value(v) => format!("`{v}`"),
    }
}

/// `text` as a TOML value, if it is one.
fn toml_value(text: &str) -> Option<Value> {
    toml::from_str::<toml::Table>(&format!("v = {}", text.trim()))
        .ok()
        .and_then(|mut t| t.remove("v"))
}

// ---------------------------------------------------------------------------------------
// docs/configuration.md

#[derive(Debug)]
struct DocRow {
    line: usize,
    default: String,
}

#[derive(Debug, Default)]
struct DocSection {
    line: usize,
    array: bool,
    rows: BTreeMap<String, DocRow>,
}

/// Sections by dotted path: each `## [name]` / `### [[name]]` heading and the key table
/// that follows it (until the next heading).
fn doc_sections(text: &str) -> BTreeMap<String, DocSection> {
    let mut out: BTreeMap<String, DocSection> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_key_table = false;
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("| Key |") {
            in_key_table = true;
        } else if !line.starts_with('|') {
            in_key_table = false;
        }
        if line.starts_with('#') {
            let title = line.trim_start_matches('#').trim();
            let name = title.trim_start_matches('[').trim_end_matches(']');
            let is_section = title.starts_with('[')
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            current = is_section.then(|| name.to_string());
            if let Some(n) = &current {
                out.insert(
                    n.clone(),
                    DocSection {
                        line: i + 1,
                        array: title.starts_with("[["),
                        ..Default::default()
                    },
                );
            }
            continue;
        }
        let (Some(section), Some(row), true) = (&current, line.strip_prefix("| `"), in_key_table)
        else {
            continue;
        };
        let cells: Vec<&str> = row.split(" | ").collect();
        let Some(key) = cells[0].strip_suffix('`') else {
            continue;
        };
        let s = out.get_mut(section).unwrap();
        let default = cells.get(2).unwrap_or(&"").to_string();
        s.rows.insert(
            key.to_string(),
            DocRow {
                line: i + 1,
                default,
            },
        );
    }
    out
}

/// The TOML value in the first backticks of a Default cell, if that is one.
fn first_literal(cell: &str) -> Option<Value> {
    cell.split('`').nth(1).and_then(toml_value)
}

// ---------------------------------------------------------------------------------------
// config/postern.toml, as text: where each key is first given and the comment above it.

#[derive(Debug)]
struct RefKey {
    line: usize,
    index: usize,
    /// The value text, for keys that are commented out.
    commented: Option<String>,
    comment: String,
}

fn reference_keys(text: &str) -> BTreeMap<(String, String), RefKey> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut index = 0;
    let mut comment = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            section = h.trim().to_string();
            let n = seen.entry(section.clone()).or_insert(0);
            index = *n;
            *n += 1;
            comment.clear();
            continue;
        }
        if let Some(h) = line.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            section = h.trim().to_string();
            index = 0;
            comment.clear();
            continue;
        }
        if line.is_empty() {
            comment.clear();
            continue;
        }
        let body = line.strip_prefix('#').map(str::trim);
        let assignment = body.unwrap_or(line).split_once('=').and_then(|(k, v)| {
            let k = k.trim();
            let is_key = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            is_key.then(|| (k.to_string(), v.trim().to_string()))
        });
        match (body, assignment) {
            (Some(_), Some((k, v))) if toml_value(&v).is_some() => {
                out.entry((section.clone(), k)).or_insert(RefKey {
                    line: i + 1,
                    index,
                    commented: Some(v),
                    comment: comment.clone(),
                });
            }
            (Some(c), _) => {
                comment.push(' ');
                comment.push_str(c);
            }
            (None, Some((k, _))) => {
                out.entry((section.clone(), k)).or_insert(RefKey {
                    line: i + 1,
                    index,
                    commented: None,
                    comment: std::mem::take(&mut comment),
                });
            }
            (None, None) => comment.clear(),
        }
    }
    out
}

/// The value after `Default:` in a comment, when it is written as a TOML value
/// (`Default: "off".`, `Default: [] (relay for no one).`).
fn comment_default(comment: &str) -> Option<Value> {
    let rest = comment.split("Default:").nth(1)?.trim();
    // The longest prefix that is a TOML value and ends where a word ends: not the `25` of
    // `25MiB`.
    let ends = rest
        .char_indices()
        .filter(|(_, c)| c.is_whitespace() || ".,;)".contains(*c));
    let ends: Vec<usize> = ends.map(|(i, _)| i).chain([rest.len()]).collect();
    ends.into_iter()
        .rev()
        .find_map(|end| toml_value(&rest[..end]).filter(|_| end > 0))
}

// ---------------------------------------------------------------------------------------

struct Check {
    docs: BTreeMap<String, DocSection>,
    reference: Value,
    ref_keys: BTreeMap<(String, String), RefKey>,
    arrays: BTreeSet<String>,
    problems: Vec<String>,
}

impl Check {
    fn new() -> Check {
        let docs = doc_sections(&read(DOCS));
        let text = read(REFERENCE);
        if let Err(e) = postern_config::parse_toml::<Config>(REFERENCE, &text) {
            panic!("{e}\n(the reference must use only keys the code reads)");
        }
        let reference: Value = toml::from_str(&text).unwrap();
        let arrays = docs
            .iter()
            .filter(|(_, s)| s.array)
            .map(|(n, _)| n.clone())
            .collect();
        Check {
            docs,
            reference,
            ref_keys: reference_keys(&text),
            arrays,
            problems: Vec::new(),
        }
    }

    /// Every section path to look into: the top level, each documented section, and the
    /// tables on the way to one (`inbound` for `[[inbound.partner]]`).
    fn section_paths(&self) -> BTreeSet<String> {
        let mut paths = BTreeSet::from([String::new()]);
        for name in self.docs.keys() {
            let segs: Vec<&str> = name.split('.').collect();
            for i in 1..=segs.len() {
                paths.insert(segs[..i].join("."));
            }
        }
        paths
    }

    /// Whether `path` is a documented section or on the way to one.
    fn is_section(&self, path: &str) -> bool {
        self.docs
            .keys()
            .any(|d| d == path || d.starts_with(&format!("{path}.")))
    }

    fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    fn run(&mut self) {
        for path in self.section_paths() {
            let segs: Vec<&str> = if path.is_empty() {
                vec![]
            } else {
                path.split('.').collect()
            };
            match code_fields(&segs, &self.arrays) {
                Ok(fields) => self.section(&path, &fields),
                Err(e) => {
                    let line = self.docs.get(&path).map(|s| s.line).unwrap_or(0);
                    self.problem(format!("{DOCS}:{line}: [{path}]: {e}"));
                }
            }
        }
    }

    fn section(&mut self, path: &str, fields: &BTreeSet<String>) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        let mut ref_fields = BTreeSet::new();
        collect_keys(&self.reference, &segs_of(path), &mut ref_fields);
        for (_, k) in self.ref_keys.keys().filter(|(s, _)| s == path) {
            ref_fields.insert(k.clone());
        }
        let rows: BTreeSet<String> = self
            .docs
            .get(path)
            .map(|s| s.rows.keys().cloned().collect())
            .unwrap_or_default();
        for f in fields {
            let sub = join(f);
            if !ref_fields.contains(f) {
                self.problem(format!(
                    "{REFERENCE}: [{path}] {f}: read by the code but not in the reference config"
                ));
            }
            if self.is_section(&sub) || rows.contains(f) {
                continue;
            }
            let what = if path.is_empty() {
                format!(
                    "section [{sub}] is read by the code but has no `## [{sub}]` (or `## [[{sub}]]`) heading with a key table"
                )
            } else {
                format!(
                    "[{path}] {f}: read by the code but has no row in the table under `[{path}]`"
                )
            };
            let line = self.docs.get(path).map(|s| s.line).unwrap_or(0);
            self.problem(format!("{DOCS}:{line}: {what}"));
        }
        for f in rows.difference(fields) {
            let line = self.docs[path].rows[f].line;
            self.problem(format!(
                "{DOCS}:{line}: [{path}] {f}: documented, but the code reads no such key (stale or misspelt?)"
            ));
        }
        for f in ref_fields.difference(fields) {
            let line = self
                .ref_keys
                .get(&(path.to_string(), f.clone()))
                .map(|r| r.line)
                .unwrap_or(0);
            self.problem(format!(
                "{REFERENCE}:{line}: [{path}] {f}: in the reference config, but the code reads no such key"
            ));
        }
        for f in fields {
            if !self.is_section(&join(f)) && !path.is_empty() {
                self.defaults(path, f);
            }
        }
    }

    /// The documented defaults of one key, in the docs and the reference.
    fn defaults(&mut self, path: &str, key: &str) {
        let Some(r) = self.ref_keys.get(&(path.to_string(), key.to_string())) else {
            return; // reported as missing
        };
        let loc = Loc {
            section: segs_of(path).iter().map(|s| s.to_string()).collect(),
            index: r.index,
            key: key.into(),
        };
        let d = match code_default(&self.reference, &loc) {
            Ok(d) => d,
            Err(e) => return self.problem(format!("{REFERENCE}:{}: {}: {e}", r.line, loc.name())),
        };
        let (rline, commented, comment) = (r.line, r.commented.clone(), r.comment.clone());
        // docs/configuration.md: the Default column.
        if let Some(row) = self.docs.get(path).and_then(|s| s.rows.get(key)) {
            let (line, cell) = (row.line, row.default.clone());
            let literal = first_literal(&cell);
            let ok = match (&d, &literal) {
                (CodeDefault::Required, _) => cell.to_lowercase().contains("required"),
                (_, Some(lit)) => self.same(&loc, &d, lit, &format!("{DOCS}:{line}")),
                (CodeDefault::Unset, None) => true,
                (CodeDefault::Value(_), None) => false,
            };
            if !ok {
                self.problem(format!(
                    "{DOCS}:{line}: {}: the Default column says {cell:?}, but the code's default is {}",
                    loc.name(),
                    show(&d)
                ));
            }
        }
        // config/postern.toml: the value given, or `Default: VALUE` in the comment above.
        let given = match &commented {
            Some(v) => toml_value(v),
            None => table_at(&mut self.reference.clone(), &loc).and_then(|t| t.get(key).cloned()),
        };
        let stated = comment_default(&comment);
        let where_ = format!("{REFERENCE}:{rline}");
        if let Some(s) = &stated
            && !self.same(&loc, &d, s, &where_)
        {
            self.problem(format!(
                "{where_}: {}: the comment says `Default: {s}`, but the code's default is {}",
                loc.name(),
                show(&d)
            ));
        }
        if let (CodeDefault::Value(_), Some(g), None) = (&d, &given, &stated)
            && !self.same(&loc, &d, g, &where_)
        {
            self.problem(format!(
                "{where_}: {}: set to `{g}`, but the code's default is {}; set it to the default, or say `Default: ...` in the comment above it",
                loc.name(),
                show(&d)
            ));
        }
    }

    fn same(&mut self, loc: &Loc, d: &CodeDefault, v: &Value, at: &str) -> bool {
        match is_default(&self.reference, loc, d, v) {
            Ok(b) => b,
            Err(e) => {
                self.problem(format!(
                    "{at}: {}: `{v}` is not a valid value: {e}",
                    loc.name()
                ));
                true
            }
        }
    }
}

fn segs_of(path: &str) -> Vec<&str> {
    if path.is_empty() {
        vec![]
    } else {
        path.split('.').collect()
    }
}

/// The keys of the section at `path` in the parsed reference, over all its elements.
fn collect_keys(v: &Value, path: &[&str], out: &mut BTreeSet<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|i| collect_keys(i, path, out)),
        Value::Table(t) => match path.split_first() {
            None => out.extend(t.keys().cloned()),
            Some((first, rest)) => {
                if let Some(v) = t.get(*first) {
                    collect_keys(v, rest, out);
                }
            }
        },
        _ => {}
    }
}

#[test]
fn docs_and_reference_config_match_the_config_types() {
    let mut c = Check::new();
    assert!(c.docs.len() > 5, "{DOCS}: no `## [section]` headings found");
    c.run();
    assert!(
        c.problems.is_empty(),
        "{} problem(s) between the config types, {DOCS} and {REFERENCE}:\n  {}\n(how to add a key: the head of tests/config_reference.rs)",
        c.problems.len(),
        c.problems.join("\n  ")
    );
}

/// The checker itself finds what it is for.
#[test]
fn the_checker_notices_stale_keys_and_wrong_defaults() {
    let c = Check::new();
    let fields = code_fields(&["listener"], &c.arrays).unwrap();
    assert!(
        fields.contains("max_errors") && fields.contains("address"),
        "{fields:?}"
    );
    assert!(code_fields(&["no_such_section"], &c.arrays).is_err());
    let loc = Loc {
        section: vec!["listener".into()],
        index: 0,
        key: "max_errors".into(),
    };
    let d = code_default(&c.reference, &loc).unwrap();
    assert_eq!(d, CodeDefault::Value(Value::Integer(10)));
    assert!(is_default(&c.reference, &loc, &d, &Value::Integer(10)).unwrap());
    assert!(!is_default(&c.reference, &loc, &d, &Value::Integer(11)).unwrap());
    let loc = Loc {
        section: vec!["listener".into()],
        index: 0,
        key: "address".into(),
    };
    assert_eq!(
        code_default(&c.reference, &loc).unwrap(),
        CodeDefault::Required
    );
    // Durations compare by value, not by spelling.
    let loc = Loc {
        section: vec!["queue".into()],
        index: 0,
        key: "max_age".into(),
    };
    let d = code_default(&c.reference, &loc).unwrap();
    assert!(is_default(&c.reference, &loc, &d, &Value::String("120h".into())).unwrap());
    assert_eq!(
        comment_default(" x. Default: \"off\". Shown here"),
        Some(Value::String("off".into()))
    );
    assert_eq!(
        comment_default(" Default: [] (relay for no one)."),
        Some(Value::Array(vec![]))
    );
    assert_eq!(comment_default(" Default: server.hostname."), None);
    assert_eq!(comment_default(" Default: 25MiB."), None);
    let docs = doc_sections(
        "## [a]\n\n| Key | Type | Default | Meaning |\n|---|---|---|---|\n| `k` | t | `\"5m\"` | m |\n",
    );
    assert_eq!(
        first_literal(&docs["a"].rows["k"].default),
        Some(Value::String("5m".into()))
    );
}
