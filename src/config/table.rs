//! Reads a TOML table key by key so that validation can report every problem
//! at once (file, key, why) instead of stopping at the first, as a plain
//! `#[derive(Deserialize)]` would. Unknown keys are problems too: a typo must
//! not silently disable a limit.

use super::bounds::{refuse_int, Span};
use config::{Map, Value, ValueKind};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub key: String,
    pub why: String,
    /// The environment variable (`DIALER__SECTION__KEY`) that set the value,
    /// when it was not the file.
    pub variable: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(var) = &self.variable {
            write!(
                f,
                "environment variable {var}: `{}`: {}",
                self.key, self.why
            )
        } else if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.why)
        } else {
            write!(f, "{}: `{}`: {}", self.file.display(), self.key, self.why)
        }
    }
}

/// Collects problems for one file.
#[derive(Debug)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl Problems {
    pub fn new(file: &Path) -> Self {
        Problems {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    pub fn add(&mut self, key: impl Into<String>, why: impl Into<String>) {
        self.list.push(Problem {
            file: self.file.clone(),
            key: key.into(),
            why: why.into(),
            variable: None,
        });
    }
}

pub struct Table<'p> {
    prefix: String,
    map: Map<String, Value>,
    used: BTreeSet<String>,
    pub problems: &'p mut Problems,
}

impl<'p> Table<'p> {
    pub fn new(map: Map<String, Value>, prefix: &str, problems: &'p mut Problems) -> Self {
        Table {
            prefix: prefix.to_string(),
            map,
            used: BTreeSet::new(),
            problems,
        }
    }

    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{}", self.prefix, key)
        }
    }

    pub fn problem(&mut self, key: &str, why: impl Into<String>) {
        let path = self.path(key);
        self.problems.add(path, why);
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// An optional key of any deserialisable type.
    pub fn opt<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        self.used.insert(key.to_string());
        let value = self.map.get(key)?.clone();
        match value.try_deserialize::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                let why = clean_error(&e.to_string());
                self.problem(key, why);
                None
            }
        }
    }

    /// An optional boolean. Only `true` or `false` is one: the `config`
    /// crate would also turn strings such as `"yes"` or `"off"` into
    /// booleans, and `paused = "no"` read as a boolean is a guess.
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        self.used.insert(key.to_string());
        match &self.map.get(key)?.kind {
            ValueKind::Boolean(b) => Some(*b),
            ValueKind::String(s) => {
                self.problem(
                    key,
                    format!("\"{s}\" is a string; write true or false, without quotes"),
                );
                None
            }
            other => {
                self.problem(
                    key,
                    format!("`{other}` is not a boolean; write true or false"),
                );
                None
            }
        }
    }

    /// A required key; reports its absence.
    pub fn req<T: DeserializeOwned>(&mut self, key: &str) -> Option<T> {
        if !self.map.contains_key(key) {
            self.used.insert(key.to_string());
            self.problem(key, "is required");
            return None;
        }
        self.opt(key)
    }

    /// An optional key parsed from a string by `parse`.
    pub fn parsed<T>(&mut self, key: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let s: String = self.opt(key)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(why) => {
                self.problem(key, why);
                None
            }
        }
    }

    /// An optional duration that must lie within `span`.
    pub fn duration_in(&mut self, key: &str, span: &Span) -> Option<std::time::Duration> {
        self.parsed(key, |s| {
            let d = parse_duration(s)?;
            match span.refuse(s.trim(), d) {
                Some(why) => Err(why),
                None => Ok(d),
            }
        })
    }

    /// An optional integer that must lie within `range`. Read as `i64` so
    /// that a negative or huge value is reported as out of range rather
    /// than as a type error.
    pub fn int_in(&mut self, key: &str, range: &RangeInclusive<u32>) -> Option<u32> {
        let v: i64 = self.opt(key)?;
        match refuse_int(v, range).map_or_else(|| u32::try_from(v).map_err(|e| e.to_string()), Err)
        {
            Ok(v) => Some(v),
            Err(why) => {
                self.problem(key, why);
                None
            }
        }
    }

    /// A sub-table; `None` when absent (or reported when not a table).
    pub fn table(&mut self, key: &str) -> Option<Table<'_>> {
        self.used.insert(key.to_string());
        let value = self.map.get(key)?.clone();
        let prefix = self.path(key);
        match value.kind {
            ValueKind::Table(map) => Some(Table {
                prefix,
                map,
                used: BTreeSet::new(),
                problems: self.problems,
            }),
            _ => {
                self.problem(key, "must be a table");
                None
            }
        }
    }

    /// An array of tables (`[[key]]`), each with its path prefix
    /// (`key[0]`), for `Table::new`; empty when absent (or reported when
    /// not an array of tables).
    pub fn array_of_tables(&mut self, key: &str) -> Vec<(String, Map<String, Value>)> {
        self.used.insert(key.to_string());
        let Some(value) = self.map.get(key).cloned() else {
            return Vec::new();
        };
        let prefix = self.path(key);
        let ValueKind::Array(items) = value.kind else {
            self.problem(
                key,
                "must be an array of tables (write each entry as a [[table]])",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match item.kind {
                ValueKind::Table(map) => out.push((format!("{prefix}[{i}]"), map)),
                _ => self
                    .problems
                    .add(format!("{prefix}[{i}]"), "must be a table"),
            }
        }
        out
    }

    /// Raw entries of this table not yet read (for maps with free keys).
    pub fn take_all(&mut self) -> Vec<(String, Value)> {
        let entries: Vec<_> = self
            .map
            .iter()
            .filter(|(k, _)| !self.used.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, _) in &entries {
            self.used.insert(k.clone());
        }
        entries
    }

    /// Reports every key that was never asked for.
    pub fn finish(self) {
        let unknown: Vec<String> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        for key in unknown {
            let path = if self.prefix.is_empty() {
                key.clone()
            } else {
                format!("{}.{}", self.prefix, key)
            };
            self.problems.add(path, "unknown key");
        }
    }
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `30s`, `20m`, `2h`, `1d`"))
}

/// The `config` crate prefixes its messages with its own key notation; keep
/// the human part.
fn clean_error(msg: &str) -> String {
    msg.split(" for key ").next().unwrap_or(msg).to_string()
}
