//! Filetests: every `tests/filetests/**/*.smelt` file is a pass test written as text.
//!
//! ```text
//! ; passes: fold
//! ; test: x + (1 + 2) folds the constant sum
//! graph g(x: f32[1]) -> (y: f32[1]) {
//!   %a = const f32[1] [1]
//!   %b = const f32[1] [2]
//!   %c = Add(%a, %b)
//!   %y = Add(%x, %c)
//!   return %y
//! }
//! ; expect:
//! graph g(x: f32[1]) -> (y: f32[1]) {
//!   %c = const f32[1] [3.0]
//!   %y = Add(%x, %c) : f32[1]
//!   return %y
//! }
//! ```
//!
//! Header comments: `; passes: SPEC` (required, the `--passes` syntax), `; test: …` (what the
//! file asserts, for the reader and the failure message). The expectation is one of: the
//! printed graph after a `; expect:` line (compared exactly, up to trailing whitespace),
//! `; expect-unchanged` (the pass must leave the graph as it is: a refusal), or
//! `; expect-error: SUBSTRING` (the pass must fail with a message containing it). Every file
//! runs as its own case (`filetest fold/cse.smelt ... ok`, shown with `--nocapture`); all of them
//! run before the test fails, each failure with a unified diff. `SMELT_FILETEST=SUBSTR` runs
//! only the files whose path contains SUBSTR; `SMELT_BLESS=1` rewrites the `; expect:` sections
//! with what the passes print now (and adds one to a file that has none) — refusals and
//! expected errors are never rewritten. docs/testing.md describes the format for users.

use std::path::{Path, PathBuf};

/// What a file expects.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    /// The graph text after the `; expect:` line.
    Text(String),
    /// The passes leave the graph as it is.
    Unchanged,
    /// The passes fail with a message containing this.
    Error(String),
    /// No expectation yet (only `SMELT_BLESS=1` accepts that, by writing one).
    Missing,
}

/// A parsed filetest.
#[derive(Debug)]
struct FileTest {
    /// The `--passes` spec.
    passes: String,
    /// The `; test:` line.
    what: Option<String>,
    /// The `; xfail: REASON` line: the pass is known to get this file wrong (the expectation
    /// says what it should do); the file must fail until the pass is fixed.
    xfail: Option<String>,
    /// Everything before the `; expect:` line: the header and the input graph.
    input: String,
    expect: Expect,
}

fn parse_file(src: &str) -> Result<FileTest, String> {
    let (input, expected) = match src.lines().position(|l| l.trim_end() == "; expect:") {
        Some(k) => {
            let lines: Vec<&str> = src.lines().collect();
            (
                lines[..k].join("\n") + "\n",
                Some(lines[k + 1..].join("\n")),
            )
        }
        None => (src.to_string(), None),
    };
    let mut passes = None;
    let mut what = None;
    let mut xfail = None;
    let mut expect = expected.map(Expect::Text);
    for line in input.lines() {
        let l = line.trim();
        let mut set = |e: Expect| match expect.replace(e) {
            None => Ok(()),
            Some(_) => Err(
                "more than one of `; expect:`, `; expect-unchanged` and `; expect-error:`"
                    .to_string(),
            ),
        };
        if let Some(p) = l.strip_prefix("; passes:") {
            if passes.replace(p.trim().to_string()).is_some() {
                return Err("two `; passes:` lines".into());
            }
        } else if let Some(t) = l.strip_prefix("; test:") {
            what = Some(t.trim().to_string());
        } else if let Some(t) = l.strip_prefix("; xfail:") {
            xfail = Some(t.trim().to_string());
        } else if l == "; expect-unchanged" {
            set(Expect::Unchanged)?;
        } else if let Some(e) = l.strip_prefix("; expect-error:") {
            let e = e.trim();
            if e.is_empty() {
                return Err("`; expect-error:` needs the text the error must contain".into());
            }
            set(Expect::Error(e.to_string()))?;
        }
    }
    let passes = passes.ok_or("no `; passes: SPEC` line")?;
    Ok(FileTest {
        passes,
        what,
        xfail,
        input,
        expect: expect.unwrap_or(Expect::Missing),
    })
}

/// Trailing whitespace and blank lines at either end do not count.
fn normalize_text(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    let start = lines.iter().position(|l| !l.is_empty()).unwrap_or(0);
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |e| e + 1);
    let mut out = lines[start..end.max(start)].join("\n");
    out.push('\n');
    out
}

fn unified_diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// Runs one filetest: `Ok("ok")`, `Ok("xfail")` for a known failure, or `Err` with the failure
/// message (with a diff when the text differs). With `bless`, a differing `; expect:` section
/// is rewritten in place and the test passes.
fn check_file(path: &Path, bless: bool) -> Result<&'static str, String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let t = parse_file(&src)?;
    match &t.xfail {
        None => run_file(path, &t, bless).map(|()| "ok").map_err(Failure::into_message),
        Some(reason) => match run_file(path, &t, false) {
            Ok(()) => Err(format!(
                "marked `; xfail: {reason}` but passes now: remove the `; xfail:` line"
            )),
            Err(Failure::Differs(_)) => Ok("xfail"),
            Err(Failure::Broken(msg)) => Err(format!(
                "marked `; xfail: {reason}`, which covers a different graph, but fails otherwise: {msg}"
            )),
        },
    }
}

/// Why a filetest failed.
#[derive(Debug)]
enum Failure {
    /// The passes gave another graph than expected (a diff).
    Differs(String),
    /// Anything else: the file, the input, the passes or the expected error.
    Broken(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::Differs(m) | Failure::Broken(m) => m,
        }
    }
}

fn run_file(path: &Path, t: &FileTest, bless: bool) -> Result<(), Failure> {
    let what = t
        .what
        .as_deref()
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    let result = smelt::testing::run_passes(&t.input, &t.passes);
    let expected = match &t.expect {
        Expect::Error(sub) => {
            return match result {
                Err(e) if e.to_string().contains(sub.as_str()) => Ok(()),
                Err(e) => Err(Failure::Broken(format!(
                    "`{}` failed{what}, but not with `{sub}`:\n{e}",
                    t.passes
                ))),
                Ok(out) => Err(Failure::Broken(format!(
                    "`{}` was expected to fail with `{sub}`{what}, and gave:\n{out}",
                    t.passes
                ))),
            };
        }
        Expect::Unchanged => smelt::testing::normalize(&t.input)
            .map_err(|e| Failure::Broken(format!("the input does not load: {e}")))?,
        Expect::Text(s) => s.clone(),
        Expect::Missing => String::new(),
    };
    let actual =
        result.map_err(|e| Failure::Broken(format!("`{}` failed{what}:\n{e}", t.passes)))?;
    let (exp, act) = (normalize_text(&expected), normalize_text(&actual));
    if exp == act && t.expect != Expect::Missing {
        return Ok(());
    }
    if bless {
        match &t.expect {
            Expect::Text(_) | Expect::Missing => {
                let mut out = normalize_text(&t.input);
                out.push_str("; expect:\n");
                out.push_str(&act);
                return std::fs::write(path, out)
                    .map_err(|e| Failure::Broken(format!("cannot bless it: {e}")));
            }
            _ => {} // a refusal is never turned into a rewrite by blessing
        }
    }
    if t.expect == Expect::Missing {
        return Err(Failure::Broken(format!(
            "no expectation (`; expect:`, `; expect-unchanged` or `; expect-error:`); \
             `{}` gives:\n{act}\n(SMELT_BLESS=1 writes it into the file)",
            t.passes
        )));
    }
    let kind = if t.expect == Expect::Unchanged {
        "should leave the graph unchanged"
    } else {
        "gives another graph than expected"
    };
    Err(Failure::Differs(format!(
        "`{}` {kind}{what}:\n{}",
        t.passes,
        unified_diff(&exp, &act)
    )))
}

fn filetest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/filetests")
}

/// Every `.smelt` file under `dir`, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "smelt") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn case_name(p: &Path) -> String {
    p.strip_prefix(filetest_dir())
        .unwrap_or(p)
        .display()
        .to_string()
}

#[test]
fn filetests() {
    let bless = std::env::var("SMELT_BLESS").is_ok_and(|v| v == "1");
    let filter = std::env::var("SMELT_FILETEST").unwrap_or_default();
    let all = files(&filetest_dir());
    assert!(
        !all.is_empty(),
        "no filetests under {}",
        filetest_dir().display()
    );
    let mut failed = vec![];
    let mut ran = 0;
    for p in all.iter().filter(|p| case_name(p).contains(&filter)) {
        ran += 1;
        let name = case_name(p);
        match check_file(p, bless) {
            Ok(status) => println!("filetest {name} ... {status}"),
            Err(msg) => {
                println!("filetest {name} ... FAILED");
                failed.push(format!("tests/filetests/{name}: {msg}"));
            }
        }
    }
    assert!(ran > 0, "SMELT_FILETEST={filter} matches no filetest");
    assert!(
        failed.is_empty(),
        "{} of {ran} filetests failed:\n\n{}\n(SMELT_BLESS=1 rewrites `; expect:` sections)",
        failed.len(),
        failed.join("\n\n")
    );
}

/// Every registered pass has filetests of both kinds: a rewrite and a refusal.
#[test]
fn every_pass_has_rewrites_and_refusals() {
    for info in smelt::passes::registry::all() {
        let dir = filetest_dir().join(info.name);
        let (mut rewrites, mut refusals) = (0, 0);
        for p in files(&dir) {
            let src = std::fs::read_to_string(&p).unwrap();
            match parse_file(&src).map(|t| t.expect) {
                Ok(Expect::Text(_)) => rewrites += 1,
                Ok(Expect::Unchanged | Expect::Error(_)) => refusals += 1,
                _ => {}
            }
        }
        assert!(
            rewrites > 0 && refusals > 0,
            "pass `{}`: {rewrites} rewrite and {refusals} refusal filetests under {}",
            info.name,
            dir.display()
        );
    }
}

/// docs/passes.md promises that a second `fold` finds nothing to do: every expected graph of a
/// file whose passes end with `fold` must come back unchanged from one more `fold` (files whose
/// expectation holds `#hash` constants are skipped: no blob stands behind them).
#[test]
fn fold_is_idempotent_on_every_expectation() {
    let mut checked = 0;
    let mut bad = vec![];
    for p in files(&filetest_dir()) {
        let src = std::fs::read_to_string(&p).unwrap();
        let Ok(t) = parse_file(&src) else { continue };
        let last = t.passes.rsplit(',').next().unwrap_or("").trim();
        let Expect::Text(expected) = &t.expect else {
            continue;
        };
        if t.xfail.is_some() || !last.starts_with("fold") || expected.contains('#') {
            continue;
        }
        // The last pass's options, when it has some (`fold(dequantize=true)`).
        let spec = t.passes[t.passes.rfind("fold").unwrap()..].to_string();
        checked += 1;
        match smelt::testing::run_passes(expected, &spec) {
            Ok(again) if normalize_text(&again) == normalize_text(expected) => {}
            Ok(again) => bad.push(format!(
                "{}: a second `{spec}` changes the expected graph:\n{}",
                case_name(&p),
                unified_diff(&normalize_text(expected), &normalize_text(&again))
            )),
            Err(e) => bad.push(format!("{}: {e}", case_name(&p))),
        }
    }
    assert!(checked > 20, "only {checked} fold expectations checked");
    assert!(bad.is_empty(), "{}", bad.join("\n\n"));
}

/// docs/passes.md promises that an exact pass never gives a graph more nodes or FLOPs: checked
/// on every expectation of the exact passes (input vs expected graph).
#[test]
fn exact_passes_never_make_a_graph_costlier() {
    let stats = |text: &str| {
        let mut m = smelt::Model::from_text(text, &smelt::ir::text::NoConsts).unwrap();
        smelt::ir::infer::infer_graph(&mut m.graph).unwrap();
        smelt::passes::cost::graph_stats(&m.graph)
    };
    let mut checked = 0;
    for p in files(&filetest_dir()) {
        let src = std::fs::read_to_string(&p).unwrap();
        let Ok(t) = parse_file(&src) else { continue };
        let Expect::Text(expected) = &t.expect else {
            continue;
        };
        if t.xfail.is_some() || t.passes.contains("quantize") || expected.contains('#') {
            continue;
        }
        checked += 1;
        let (before, after) = (stats(&t.input), stats(expected));
        assert!(
            after.nodes <= before.nodes && after.flops <= before.flops,
            "{}: {} nodes, {} FLOPs before; {} nodes, {} FLOPs after",
            case_name(&p),
            before.nodes,
            before.flops,
            after.nodes,
            after.flops
        );
    }
    assert!(checked > 20, "only {checked} expectations checked");
}

/// The testing API the runner uses is the one users snapshot with (docs/testing.md).
#[test]
fn the_testing_api_snapshots_with_insta() {
    let before = "graph g(x: f32[2]) -> (y: f32[2]) {
      %a = const f32[2] [1, 2]
      %b = const f32[2] [3, 4]
      %c = Add(%a, %b)
      %y = Mul(%x, %c)
      return %y
    }";
    insta::assert_snapshot!(smelt::testing::run_passes(before, "fold").unwrap(), @r"
    graph g(x: f32[2]) -> (y: f32[2]) {
      %c = const f32[2] [4.0, 6.0]
      %y = Mul(%x, %c) : f32[2]
      return %y
    }
    ");
    let e = smelt::testing::run_passes(
        "graph g(x: f32[2]) -> (y: f32[2]) {\n  %y = Relu(%x,,)\n  return %y\n}",
        "fold",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "2:16: expected `%name` or `_` but found `,`\n    %y = Relu(%x,,)\n                 ^"
    );
}

/// A scratch file for the runner's own tests.
fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("smelt-filetests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const RELU_INPUT: &str = "; passes: fold
; test: a double Identity goes away
graph g(x: f32[2]) -> (y: f32[2]) {
  %a = Identity(%x)
  %b = Relu(%a)
  %y = Identity(%b)
  return %y
}
";

#[test]
fn a_broken_expectation_fails_with_a_readable_diff() {
    let broken = format!(
        "{RELU_INPUT}; expect:\ngraph g(x: f32[2]) -> (y: f32[2]) {{\n  %y = Sigmoid(%x) : f32[2]\n  return %y\n}}\n"
    );
    let p = scratch("broken.smelt", &broken);
    let msg = check_file(&p, false).unwrap_err();
    assert!(msg.contains("(a double Identity goes away)"), "{msg}");
    assert!(msg.contains("--- expected\n+++ actual\n"), "{msg}");
    assert!(msg.contains("\n-  %y = Sigmoid(%x) : f32[2]\n"), "{msg}");
    assert!(msg.contains("\n+  %y = Relu(%x) : f32[2]\n"), "{msg}");
    // Blessing rewrites the expectation, after which the file passes.
    check_file(&p, true).unwrap();
    check_file(&p, false).unwrap();
    let blessed = std::fs::read_to_string(&p).unwrap();
    assert!(blessed.starts_with(RELU_INPUT), "{blessed}");
    assert!(blessed.contains("; expect:\n"), "{blessed}");
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_dir(p.parent().unwrap()); // when the other self-test is done too
}

#[test]
fn refusals_and_errors_are_checked_and_never_blessed() {
    let p = scratch(
        "unchanged.smelt",
        &format!("{}; expect-unchanged\n", RELU_INPUT),
    );
    let msg = check_file(&p, true).unwrap_err();
    assert!(msg.contains("should leave the graph unchanged"), "{msg}");
    assert!(msg.contains("-  %a = Identity(%x) : f32[2]"), "{msg}");
    let p = scratch(
        "error.smelt",
        &format!("{RELU_INPUT}; expect-error: no such thing\n"),
    );
    let msg = check_file(&p, false).unwrap_err();
    assert!(
        msg.contains("was expected to fail with `no such thing`"),
        "{msg}"
    );
    let p = scratch(
        "spec.smelt",
        &RELU_INPUT.replace(
            "; passes: fold",
            "; passes: fodl\n; expect-error: unknown pass `fodl`",
        ),
    );
    assert_eq!(check_file(&p, false), Ok("ok"));
    // A known failure must fail; once it passes, the runner says to drop the mark.
    let p = scratch(
        "xfail.smelt",
        &RELU_INPUT.replace("; passes: fold", "; passes: fold\n; xfail: for the test"),
    );
    let msg = check_file(&p, false).unwrap_err();
    assert!(msg.contains("fails otherwise: no expectation"), "{msg}");
    std::fs::write(
        &p,
        format!("{RELU_INPUT}; xfail: for the test\n; expect-unchanged\n"),
    )
    .unwrap();
    assert_eq!(check_file(&p, false), Ok("xfail"));
    check_file(&p, true).unwrap();
    let fixed = format!("{RELU_INPUT}; xfail: fixed\n; expect:\ngraph g(x: f32[2]) -> (y: f32[2]) {{\n  %y = Relu(%x) : f32[2]\n  return %y\n}}\n");
    std::fs::write(&p, fixed).unwrap();
    assert!(check_file(&p, false).unwrap_err().contains("passes now"));
    for f in ["unchanged", "error", "spec", "xfail"] {
        let _ = std::fs::remove_file(p.with_file_name(format!("{f}.smelt")));
    }
    let _ = std::fs::remove_dir(p.parent().unwrap()); // when the other self-test is done too
    assert!(parse_file("graph g() -> () { return }")
        .unwrap_err()
        .contains("; passes:"));
}
