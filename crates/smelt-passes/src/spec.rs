//! The `--passes` spec: `fold,quantize(bits=8,per_channel=true),prune(ratio=0.5,calib=x.pb)`.
//!
//! Grammar (whitespace between tokens is ignored):
//!
//! ```text
//! spec   := "" | item ("," item)*
//! item   := NAME ("(" (option ("," option)*)? ")")?
//! option := KEY "=" value
//! value  := '"' chars '"' | "'" chars "'" | bare
//! ```
//!
//! A bare value runs to the next `,` or `)` outside brackets, so `skip=fc(1|2)` needs no
//! quotes; a quoted value may hold anything but its quote. Every error carries the 1-based
//! column it was found at ([`SpecError::render`] draws a caret under it): an unknown pass
//! lists the known ones, an unknown option lists the pass's options, a bad value says what
//! the option takes.

use crate::registry::{self, OptionKind, PassInfo};
use std::collections::BTreeMap;
use std::fmt;

/// A spec error at a column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--passes, column {column}: {msg}")]
pub struct SpecError {
    /// 1-based column (in characters) where the problem is.
    pub column: usize,
    /// What is wrong.
    pub msg: String,
}

impl SpecError {
    /// The message with the spec and a caret under the column.
    pub fn render(&self, spec: &str) -> String {
        format!(
            "{self}\n  {spec}\n  {}^",
            " ".repeat(self.column.saturating_sub(1))
        )
    }
}

/// One option value, typed by the option's [`OptionKind`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum OptionValue {
    /// `true` / `false` (also `1` / `0`).
    Bool(bool),
    /// An integer; for byte sizes, bytes (suffixes `K`, `M`, `G`, with or without `iB`, are
    /// powers of 1024).
    Int(i64),
    /// A number.
    Float(f64),
    /// A string (regexes are checked when parsed; paths are kept as written).
    Str(String),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Bool(b) => write!(f, "{b}"),
            OptionValue::Int(i) => write!(f, "{i}"),
            OptionValue::Float(x) => write!(f, "{x}"),
            OptionValue::Str(s) => write!(f, "{s}"),
        }
    }
}

/// The options given to one pass, validated against its [`PassInfo`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    values: BTreeMap<String, OptionValue>,
}

impl Options {
    /// Options from typed values (for building passes from code).
    pub fn from_values(values: impl IntoIterator<Item = (String, OptionValue)>) -> Options {
        Options {
            values: values.into_iter().collect(),
        }
    }
    /// The value of an option, if given.
    pub fn get(&self, name: &str) -> Option<&OptionValue> {
        self.values.get(name)
    }
    /// A bool option, or `default`.
    pub fn bool(&self, name: &str, default: bool) -> bool {
        match self.values.get(name) {
            Some(OptionValue::Bool(b)) => *b,
            _ => default,
        }
    }
    /// An integer option, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        match self.values.get(name) {
            Some(OptionValue::Int(i)) => *i,
            _ => default,
        }
    }
    /// A number option, or `default`.
    pub fn float(&self, name: &str, default: f64) -> f64 {
        match self.values.get(name) {
            Some(OptionValue::Float(x)) => *x,
            Some(OptionValue::Int(i)) => *i as f64,
            _ => default,
        }
    }
    /// A string option.
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(OptionValue::Str(s)) => Some(s),
            _ => None,
        }
    }
    /// The options as `key=value` pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OptionValue)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// One parsed item of the spec.
#[derive(Clone, Debug, PartialEq)]
pub struct PassSpec {
    /// The pass name.
    pub name: String,
    /// The validated options.
    pub options: Options,
    /// Column of the name.
    pub column: usize,
}

impl fmt::Display for PassSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.options.values.is_empty() {
            return Ok(());
        }
        let opts: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "({})", opts.join(","))
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn col(&self) -> usize {
        self.pos + 1
    }
    fn skip_ws(&mut self) {
        while self.pos < self.chars.len() && self.chars[self.pos].is_whitespace() {
            self.pos += 1;
        }
    }
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn err<T>(&self, column: usize, msg: impl Into<String>) -> Result<T, SpecError> {
        Err(SpecError {
            column,
            msg: msg.into(),
        })
    }
    fn ident(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.chars[start..self.pos].iter().collect()
    }
    fn value(&mut self) -> Result<String, SpecError> {
        let col = self.col();
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.pos += 1;
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == q {
                        let v: String = self.chars[start..self.pos].iter().collect();
                        self.pos += 1;
                        return Ok(v);
                    }
                    self.pos += 1;
                }
                self.err(col, format!("unterminated quoted value (missing `{q}`)"))
            }
            _ => {
                let start = self.pos;
                let mut depth = 0usize;
                while let Some(c) = self.peek() {
                    match c {
                        '(' | '[' | '{' => depth += 1,
                        ')' | ']' | '}' if depth > 0 => depth -= 1,
                        ',' | ')' if depth == 0 => break,
                        _ => {}
                    }
                    self.pos += 1;
                }
                let v: String = self.chars[start..self.pos].iter().collect();
                Ok(v.trim_end().to_string())
            }
        }
    }
}

/// Parses a spec against the registry of passes.
pub fn parse(spec: &str) -> Result<Vec<PassSpec>, SpecError> {
    parse_with(spec, registry::all())
}

/// Parses a spec against a given list of passes (tests and embedders with their own passes).
pub fn parse_with(spec: &str, passes: &[PassInfo]) -> Result<Vec<PassSpec>, SpecError> {
    let mut lx = Lexer {
        chars: spec.chars().collect(),
        pos: 0,
    };
    let mut out = vec![];
    lx.skip_ws();
    if lx.peek().is_none() {
        return Ok(out);
    }
    loop {
        lx.skip_ws();
        let col = lx.col();
        let name = lx.ident();
        if name.is_empty() {
            return match lx.peek() {
                None | Some(',') => lx.err(col, "expected a pass name"),
                Some(c) => lx.err(col, format!("expected a pass name, found `{c}`")),
            };
        }
        let Some(info) = passes.iter().find(|p| p.name == name) else {
            let known: Vec<&str> = passes.iter().map(|p| p.name).collect();
            return lx.err(
                col,
                format!("unknown pass `{name}`; known passes: {}", known.join(", ")),
            );
        };
        let mut values = BTreeMap::new();
        lx.skip_ws();
        if lx.peek() == Some('(') {
            lx.pos += 1;
            lx.skip_ws();
            if lx.peek() == Some(')') {
                lx.pos += 1;
            } else {
                loop {
                    lx.skip_ws();
                    let kcol = lx.col();
                    let key = lx.ident();
                    if key.is_empty() {
                        return lx.err(kcol, format!("expected an option name for `{name}`"));
                    }
                    let Some(opt) = info.options.iter().find(|o| o.name == key) else {
                        let known: Vec<&str> = info.options.iter().map(|o| o.name).collect();
                        let list = if known.is_empty() {
                            "it takes none".to_string()
                        } else {
                            format!("it takes {}", known.join(", "))
                        };
                        return lx
                            .err(kcol, format!("pass `{name}` has no option `{key}`; {list}"));
                    };
                    lx.skip_ws();
                    if lx.peek() != Some('=') {
                        return lx.err(lx.col(), format!("expected `=` after `{key}`"));
                    }
                    lx.pos += 1;
                    lx.skip_ws();
                    let vcol = lx.col();
                    let raw = lx.value()?;
                    let v = parse_value(&raw, opt.kind).map_err(|msg| SpecError {
                        column: vcol,
                        msg: format!("`{name}` option `{key}`: {msg}"),
                    })?;
                    if values.insert(key.clone(), v).is_some() {
                        return lx.err(kcol, format!("option `{key}` of `{name}` given twice"));
                    }
                    lx.skip_ws();
                    match lx.peek() {
                        Some(',') => lx.pos += 1,
                        Some(')') => {
                            lx.pos += 1;
                            break;
                        }
                        Some(c) => {
                            return lx.err(lx.col(), format!("expected `,` or `)`, found `{c}`"))
                        }
                        None => {
                            return lx.err(lx.col(), format!("expected `)` to close `{name}(`"))
                        }
                    }
                }
            }
        }
        out.push(PassSpec {
            name,
            options: Options { values },
            column: col,
        });
        lx.skip_ws();
        match lx.peek() {
            None => return Ok(out),
            Some(',') => lx.pos += 1,
            Some(c) => {
                return lx.err(
                    lx.col(),
                    format!("expected `,` between passes, found `{c}`"),
                )
            }
        }
    }
}

/// Parses one value as the option kind says.
pub fn parse_value(raw: &str, kind: OptionKind) -> Result<OptionValue, String> {
    match kind {
        OptionKind::Bool => match raw {
            "true" | "1" => Ok(OptionValue::Bool(true)),
            "false" | "0" => Ok(OptionValue::Bool(false)),
            _ => Err(format!("expected true or false, found `{raw}`")),
        },
        OptionKind::Int => raw
            .parse::<i64>()
            .map(OptionValue::Int)
            .map_err(|_| format!("expected an integer, found `{raw}`")),
        OptionKind::Float => match raw.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(OptionValue::Float(x)),
            _ => Err(format!("expected a number, found `{raw}`")),
        },
        OptionKind::Bytes => parse_bytes(raw).map(OptionValue::Int).ok_or_else(|| {
            format!("expected a byte size such as 1048576, 64M or 1GiB, found `{raw}`")
        }),
        OptionKind::Regex => match regex::Regex::new(raw) {
            Ok(_) => Ok(OptionValue::Str(raw.to_string())),
            Err(e) => Err(format!("bad regex: {e}")),
        },
        OptionKind::Path | OptionKind::Str => {
            if raw.is_empty() {
                Err("expected a value".into())
            } else {
                Ok(OptionValue::Str(raw.to_string()))
            }
        }
    }
}

fn parse_bytes(raw: &str) -> Option<i64> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let mul: i64 = match unit {
        "" | "B" => 1,
        "K" | "KiB" | "KB" | "k" => 1 << 10,
        "M" | "MiB" | "MB" => 1 << 20,
        "G" | "GiB" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(spec: &str) -> String {
        parse(spec).unwrap_err().render(spec)
    }

    #[test]
    fn parses_names_options_and_defaults() {
        let p =
            parse(" fold , quantize(bits=8, per_channel=true,skip=fc(1|2)) ,fold(max_bytes=64M)")
                .unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].name, "fold");
        assert_eq!(p[0].column, 2);
        assert_eq!(p[1].options.int("bits", 0), 8);
        assert!(p[1].options.bool("per_channel", false));
        assert_eq!(p[1].options.str("skip"), Some("fc(1|2)"));
        assert_eq!(p[2].options.int("max_bytes", 0), 64 << 20);
        assert_eq!(
            p[1].to_string(),
            "quantize(bits=8,per_channel=true,skip=fc(1|2))"
        );
        assert!(parse("").unwrap().is_empty());
        assert_eq!(
            parse("quantize(skip=\"a,b\")").unwrap()[0]
                .options
                .str("skip"),
            Some("a,b")
        );
    }

    #[test]
    fn errors_name_the_problem_and_the_column() {
        assert_eq!(
            err("fold,fodl"),
            "--passes, column 6: unknown pass `fodl`; known passes: fold, quantize\n  fold,fodl\n       ^"
        );
        assert_eq!(
            parse("fold(max_byte=1)").unwrap_err().to_string(),
            "--passes, column 6: pass `fold` has no option `max_byte`; it takes dequantize, max_bytes"
        );
        assert_eq!(
            parse("fold(dequantize=yes)").unwrap_err().to_string(),
            "--passes, column 17: `fold` option `dequantize`: expected true or false, found `yes`"
        );
        assert_eq!(
            parse("quantize(bits=eight)").unwrap_err().to_string(),
            "--passes, column 15: `quantize` option `bits`: expected an integer, found `eight`"
        );
        assert_eq!(
            parse("fold,,quantize").unwrap_err().to_string(),
            "--passes, column 6: expected a pass name"
        );
        assert_eq!(
            parse("fold(dequantize=true").unwrap_err().to_string(),
            "--passes, column 21: expected `)` to close `fold(`"
        );
        assert_eq!(
            parse("fold(dequantize)").unwrap_err().to_string(),
            "--passes, column 16: expected `=` after `dequantize`"
        );
        assert_eq!(
            parse("fold(dequantize=true,dequantize=false)")
                .unwrap_err()
                .to_string(),
            "--passes, column 22: option `dequantize` of `fold` given twice"
        );
        assert!(parse("quantize(skip=\"(\")")
            .unwrap_err()
            .to_string()
            .contains("bad regex"));
        assert_eq!(
            parse("fold quantize").unwrap_err().to_string(),
            "--passes, column 6: expected `,` between passes, found `q`"
        );
    }
}
