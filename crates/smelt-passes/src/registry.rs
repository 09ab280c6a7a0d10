//! The registry: every pass by name, alphabetically, with its options.

use crate::pass::{Pass, PassError};
use crate::spec::{Options, PassSpec};

/// What kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionKind {
    /// `true` / `false`.
    Bool,
    /// An integer.
    Int,
    /// A number.
    Float,
    /// A byte size (`1048576`, `64M`, `1GiB`).
    Bytes,
    /// A regular expression (checked when parsed).
    Regex,
    /// A file path.
    Path,
    /// Any string.
    Str,
}

/// One option of a pass.
#[derive(Clone, Copy, Debug)]
pub struct OptionInfo {
    /// The name in the spec.
    pub name: &'static str,
    /// The kind of value.
    pub kind: OptionKind,
    /// The default, as written in the spec.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// One registered pass.
#[derive(Clone, Copy)]
pub struct PassInfo {
    /// The name in the spec.
    pub name: &'static str,
    /// One line of help.
    pub summary: &'static str,
    /// Its options, alphabetically.
    pub options: &'static [OptionInfo],
    /// Builds the pass from validated options.
    pub build: fn(&Options) -> Result<Box<dyn Pass>, PassError>,
}

impl std::fmt::Debug for PassInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassInfo")
            .field("name", &self.name)
            .finish()
    }
}

static ALL: &[PassInfo] = &[crate::fold::INFO, crate::quantize::INFO];

/// Every pass, alphabetically by name.
pub fn all() -> &'static [PassInfo] {
    ALL
}

/// The pass registered under `name`.
pub fn find(name: &str) -> Option<&'static PassInfo> {
    ALL.iter().find(|p| p.name == name)
}

/// Every pass with its options and defaults, for `smelt opt --list-passes`.
pub fn describe() -> String {
    let mut out = String::new();
    for p in ALL {
        out.push_str(&format!("{}  {}\n", p.name, p.summary));
        for o in p.options {
            let default = if o.default.is_empty() {
                String::new()
            } else {
                format!(" (default {})", o.default)
            };
            out.push_str(&format!(
                "    {}={:?}{default}  {}\n",
                o.name, o.kind, o.help
            ));
        }
    }
    out
}

/// Builds the pass a parsed spec item names.
pub fn build(spec: &PassSpec) -> Result<Box<dyn Pass>, PassError> {
    match find(&spec.name) {
        Some(info) => (info.build)(&spec.options),
        None => Err(PassError::Spec(crate::spec::SpecError {
            column: spec.column,
            msg: format!("unknown pass `{}`", spec.name),
        })),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn describe_lists_passes_and_options() {
        let d = super::describe();
        assert!(d.starts_with("fold  constant folding"), "{d}");
        assert!(
            d.contains("    max_bytes=Bytes (default 1GiB)  leave nodes"),
            "{d}"
        );
        assert!(d.contains("    skip=Regex  keep nodes"), "{d}");
    }

    #[test]
    fn passes_and_their_options_are_listed_alphabetically() {
        let names: Vec<&str> = super::all().iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for p in super::all() {
            let o: Vec<&str> = p.options.iter().map(|o| o.name).collect();
            let mut s = o.clone();
            s.sort();
            assert_eq!(o, s, "options of {}", p.name);
        }
    }
}
