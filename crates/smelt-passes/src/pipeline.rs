//! The pipeline: passes run in the order given, each measured, timed, verified and optionally
//! printed and checked against the runner.
//!
//! `Pipeline::parse(spec)?.run(&mut graph, &mut cx, &RunOptions { .. })` gives a
//! [`PipelineReport`] (a table with `Display`, JSON with [`PipelineReport::to_json`]), or a
//! [`PipelineError`] holding the error and the report of the passes that ran.
//!
//! ## `--verify each`
//!
//! With [`RunOptions::verify_each`] set, the pipeline runs the graph before and after every
//! exact pass ([`Pass::exact`]) with the caller's [`Runner`] on the given inputs and compares the
//! outputs (after a lossy pass it only reports how far the outputs moved). When they drift it runs both graphs once more with every named value present in
//! both exposed as an extra output ([`compare_graphs`]), walks the rewritten graph in
//! topological order and names the first value that differs: the pipeline stops with
//! [`PassError::Drift`], naming the pass and that node. This relies on a rule every pass keeps:
//! *a value name means the same numbers before and after a pass* — a rewrite that changes what
//! a value computes gives the result the name of the value it replaces (BN folding names the
//! Conv's output after the BatchNormalization's).

use crate::cost::{graph_stats, GraphStats};
use crate::pass::{Pass, PassCtx, PassError, Runner};
use crate::registry;
use smelt_ir::{Graph, Tensor, ValueId};
use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

/// Which passes print the text form after they run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PrintIr {
    /// None (the default).
    #[default]
    None,
    /// Every pass (`--print-ir-after-all`).
    All,
    /// The passes with these names (`--print-ir-after PASS`).
    After(Vec<String>),
}

/// `--verify each`: the runner and inputs to compare each pass with.
pub struct VerifyEach<'a> {
    /// Runs graphs (the JIT or tract).
    pub runner: &'a dyn Runner,
    /// One set of graph inputs.
    pub inputs: Vec<Tensor>,
    /// Relative tolerance for floats.
    pub rtol: f64,
    /// Absolute tolerance for floats (integers compare exactly).
    pub atol: f64,
}

/// How to run a pipeline.
pub struct RunOptions<'a> {
    /// Run the verifier on the input and after every pass (default: in debug builds).
    pub verify_ir: bool,
    /// Run only the first N passes (`--stop-after N`).
    pub stop_after: Option<usize>,
    /// Which passes print the text form after they run.
    pub print_ir: PrintIr,
    /// Compare values before and after every exact pass.
    pub verify_each: Option<VerifyEach<'a>>,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            verify_ir: cfg!(debug_assertions),
            stop_after: None,
            print_ir: PrintIr::None,
            verify_each: None,
        }
    }
}

/// One pass's line of the report.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PassReport {
    /// The pass, as written in the spec (name and options).
    pub pass: String,
    /// Rewrites the pass applied.
    pub rewrites: usize,
    /// The graph before.
    pub before: GraphStats,
    /// The graph after.
    pub after: GraphStats,
    /// Wall time in milliseconds.
    pub time_ms: f64,
    /// What the pass said (what it left alone, …).
    pub notes: Vec<String>,
    /// `--verify each`: "ok", or for a lossy pass how far the outputs moved; absent without
    /// `--verify each`.
    pub verified: Option<String>,
}

/// The text form after one pass.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IrDump {
    /// The pass.
    pub pass: String,
    /// 1-based position of the pass in the pipeline.
    pub index: usize,
    /// The graph's text form.
    pub text: String,
}

/// The report of a pipeline run.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct PipelineReport {
    /// One line per pass that ran.
    pub passes: Vec<PassReport>,
    /// Set when `stop_after` cut the pipeline short: the number of passes run.
    pub stopped_after: Option<usize>,
    /// The text forms `print_ir` asked for.
    pub ir_after: Vec<IrDump>,
}

/// A value that differs after a pass (`--verify each`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Drift {
    /// The pass, as written in the spec.
    pub pass: String,
    /// 1-based position of the pass in the pipeline.
    pub index: usize,
    /// The first node (in the rewritten graph's topological order) whose value differs, when
    /// intermediate values could be compared.
    pub node: Option<String>,
    /// The value's name.
    pub value: Option<String>,
    /// The largest absolute difference found in that value (or in the outputs).
    pub max_abs_diff: f64,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "--verify each: outputs drift after pass {} `{}`",
            self.index, self.pass
        )?;
        match (&self.node, &self.value) {
            (Some(n), Some(v)) => write!(
                f,
                "; first differing node `{n}` (value `{v}`, max abs diff {:e})",
                self.max_abs_diff
            ),
            _ => write!(f, " (max abs diff {:e})", self.max_abs_diff),
        }
    }
}

/// A pipeline that failed, with the report of what ran before.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct PipelineError {
    /// What went wrong.
    pub error: PassError,
    /// The passes that ran.
    pub report: PipelineReport,
}

/// Passes to run in order.
pub struct Pipeline {
    passes: Vec<(String, Box<dyn Pass>)>,
}

impl Pipeline {
    /// A pipeline from passes built in code.
    pub fn new(passes: Vec<Box<dyn Pass>>) -> Pipeline {
        Pipeline {
            passes: passes
                .into_iter()
                .map(|p| (p.name().to_string(), p))
                .collect(),
        }
    }

    /// A pipeline from a `--passes` spec (see [`crate::spec`]).
    pub fn parse(spec: &str) -> Result<Pipeline, PassError> {
        let items = crate::spec::parse(spec)?;
        let mut passes = vec![];
        for it in &items {
            passes.push((it.to_string(), registry::build(it)?));
        }
        Ok(Pipeline { passes })
    }

    /// The passes, as written in the spec.
    pub fn names(&self) -> Vec<&str> {
        self.passes.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Runs the passes in order on `g`.
    pub fn run(
        &self,
        g: &mut Graph,
        cx: &mut PassCtx,
        opts: &RunOptions,
    ) -> Result<PipelineReport, PipelineError> {
        let mut report = PipelineReport::default();
        macro_rules! fail {
            ($e:expr) => {
                return Err(PipelineError { error: $e, report })
            };
        }
        if opts.verify_ir {
            if let Err(e) = smelt_ir::verify(g) {
                fail!(PassError::InvalidInput(e));
            }
        }
        let n = opts
            .stop_after
            .unwrap_or(self.passes.len())
            .min(self.passes.len());
        if n < self.passes.len() {
            report.stopped_after = Some(n);
        }
        for (i, (label, pass)) in self.passes.iter().take(n).enumerate() {
            let before = graph_stats(g);
            let snapshot = opts.verify_each.as_ref().map(|_| g.clone());
            cx.take_notes();
            let t0 = Instant::now();
            let changed = match pass.run(g, cx) {
                Ok(c) => c,
                Err(e) => fail!(e),
            };
            let time_ms = t0.elapsed().as_secs_f64() * 1e3;
            if opts.verify_ir {
                if let Err(errors) = smelt_ir::verify(g) {
                    fail!(PassError::Invalid {
                        pass: label.clone(),
                        errors
                    });
                }
            }
            let mut verified = None;
            if let (Some(ve), Some(old)) = (&opts.verify_each, snapshot) {
                if !pass.exact() {
                    // Lossy: report how far the outputs moved, never fail on it.
                    verified = Some(match output_drift(&old, g, ve) {
                        Ok(d) => format!("lossy pass: outputs differ by up to {d:e}"),
                        Err(e) => format!("lossy pass: not compared ({e})"),
                    });
                } else {
                    match compare_graphs(&old, g, ve) {
                        Ok(None) => verified = Some("ok".to_string()),
                        Ok(Some(mut d)) => {
                            d.pass = label.clone();
                            d.index = i + 1;
                            fail!(PassError::Drift(Box::new(d)));
                        }
                        Err(msg) => fail!(PassError::Runner {
                            pass: format!("verify-each after {label}"),
                            msg
                        }),
                    }
                }
            }
            report.passes.push(PassReport {
                pass: label.clone(),
                rewrites: changed.rewrites,
                before,
                after: graph_stats(g),
                time_ms,
                notes: cx.take_notes(),
                verified,
            });
            let print = match &opts.print_ir {
                PrintIr::None => false,
                PrintIr::All => true,
                PrintIr::After(names) => names.iter().any(|p| p == pass.name() || p == label),
            };
            if print {
                report.ir_after.push(IrDump {
                    pass: label.clone(),
                    index: i + 1,
                    text: g.to_text(),
                });
            }
        }
        Ok(report)
    }
}

/// Runs `before` and `after` with the runner on the same inputs and compares them: `None`
/// when every output agrees within the tolerance; otherwise the first value (in `after`'s
/// topological order, among the named values both graphs have) that differs. The pass fields
/// of the [`Drift`] are left empty for the caller.
pub fn compare_graphs(
    before: &Graph,
    after: &Graph,
    ve: &VerifyEach,
) -> Result<Option<Drift>, String> {
    let a = ve.runner.run(before, &ve.inputs)?;
    let b = ve.runner.run(after, &ve.inputs)?;
    if a.len() != b.len() {
        return Err(format!(
            "the graph had {} outputs and has {}",
            a.len(),
            b.len()
        ));
    }
    let mut worst = 0.0f64;
    let mut bad = false;
    for (x, y) in a.iter().zip(&b) {
        match diff(x, y, ve.rtol, ve.atol) {
            Some((d, ok)) => {
                worst = worst.max(d);
                bad |= !ok;
            }
            None => bad = true,
        }
    }
    if !bad {
        return Ok(None);
    }
    let mut drift = Drift {
        pass: String::new(),
        index: 0,
        node: None,
        value: None,
        max_abs_diff: worst,
    };
    // Expose every value both graphs name and compare in the rewritten graph's order.
    let names_before: HashSet<String> = before.values_by_name().into_keys().collect();
    let order = after.topo_order().map_err(|e| e.to_string())?;
    let mut common: Vec<(String, String)> = vec![]; // (value, node)
    for id in order {
        let n = after.node(id);
        if matches!(n.op, smelt_ir::Op::Input | smelt_ir::Op::Const(_)) {
            continue;
        }
        for v in &n.outputs {
            if !v.name.is_empty() && v.ty.as_tensor().is_some() && names_before.contains(&v.name) {
                common.push((v.name.clone(), after.display_node_name(id)));
            }
        }
    }
    let names: Vec<String> = common.iter().map(|c| c.0.clone()).collect();
    let (Some(xb), Some(xa)) = (expose(before, &names), expose(after, &names)) else {
        return Ok(Some(drift));
    };
    let (Ok(vb), Ok(va)) = (
        ve.runner.run(&xb, &ve.inputs),
        ve.runner.run(&xa, &ve.inputs),
    ) else {
        return Ok(Some(drift));
    };
    let nb = before.outputs().len();
    let na = after.outputs().len();
    for (k, (value, node)) in common.iter().enumerate() {
        let (Some(x), Some(y)) = (vb.get(nb + k), va.get(na + k)) else {
            break;
        };
        match diff(x, y, ve.rtol, ve.atol) {
            Some((_, true)) => {}
            Some((d, false)) => {
                drift.node = Some(node.clone());
                drift.value = Some(value.clone());
                drift.max_abs_diff = d;
                return Ok(Some(drift));
            }
            None => {
                drift.node = Some(node.clone());
                drift.value = Some(value.clone());
                drift.max_abs_diff = f64::INFINITY;
                return Ok(Some(drift));
            }
        }
    }
    Ok(Some(drift))
}

/// The largest absolute difference between the outputs of two graphs on the inputs.
fn output_drift(before: &Graph, after: &Graph, ve: &VerifyEach) -> Result<f64, String> {
    let a = ve.runner.run(before, &ve.inputs)?;
    let b = ve.runner.run(after, &ve.inputs)?;
    let mut worst = 0f64;
    for (x, y) in a.iter().zip(&b) {
        match diff(x, y, ve.rtol, ve.atol) {
            Some((d, _)) => worst = worst.max(d),
            None => return Err("the outputs differ in type or shape".into()),
        }
    }
    Ok(worst)
}

/// A copy of `g` whose outputs are its own followed by the named values.
fn expose(g: &Graph, names: &[String]) -> Option<Graph> {
    let by = g.values_by_name();
    let mut out = g.clone();
    let mut outs: Vec<ValueId> = g.outputs().to_vec();
    for n in names {
        outs.push(*by.get(n)?);
    }
    // A value already an output is listed twice: route the extra copy through Identity.
    let mut seen = HashSet::new();
    let mut fixed = vec![];
    for v in outs {
        if seen.insert(v) {
            fixed.push(v);
        } else {
            let ty = out.value_type(v).clone();
            let name = out.fresh_name(&format!("{}_exposed", out.value(v).name));
            let id = out
                .add_node(
                    out.fresh_node_name("expose"),
                    smelt_ir::Op::Identity(smelt_ir::ops::Identity {}),
                    &[Some(v)],
                    vec![smelt_ir::Value { name, ty }],
                )
                .ok()?;
            fixed.push(ValueId::new(id, 0));
        }
    }
    out.set_outputs(fixed).ok()?;
    Some(out)
}

/// Largest absolute difference and whether it is within tolerance; `None` when the tensors
/// differ in dtype or shape.
fn diff(a: &Tensor, b: &Tensor, rtol: f64, atol: f64) -> Option<(f64, bool)> {
    if a.dtype() != b.dtype() || a.dims() != b.dims() {
        return None;
    }
    if a.dtype().is_float() {
        let (x, y) = (a.to_f64_vec()?, b.to_f64_vec()?);
        let mut worst = 0.0f64;
        let mut ok = true;
        for (p, q) in x.iter().zip(&y) {
            if p.is_nan() && q.is_nan() {
                continue;
            }
            let d = (p - q).abs();
            if d.is_nan() || d > atol + rtol * p.abs() {
                ok = false;
            }
            if d.is_nan() {
                worst = f64::INFINITY;
            } else {
                worst = worst.max(d);
            }
        }
        Some((worst, ok))
    } else {
        let same = a == b;
        Some((if same { 0.0 } else { f64::INFINITY }, same))
    }
}

fn fmt_count(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_bytes(v: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = v as f64;
    let mut u = 0;
    while x >= 1024.0 && u < U.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{v} B")
    } else {
        format!("{x:.1} {}", U[u])
    }
}

impl PipelineReport {
    /// The report as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The table; `with_time: false` leaves out the (nondeterministic) time column.
    pub fn table(&self, with_time: bool) -> String {
        let mut rows: Vec<Vec<String>> = vec![];
        let mut head = vec![
            "pass".to_string(),
            "rewrites".into(),
            "nodes".into(),
            "parameters".into(),
            "parameter bytes".into(),
            "FLOPs".into(),
        ];
        if with_time {
            head.push("time".into());
        }
        rows.push(head);
        for p in &self.passes {
            let arrow = |a: String, b: String| format!("{a} → {b}");
            let mut r = vec![
                p.pass.clone(),
                p.rewrites.to_string(),
                arrow(fmt_count(p.before.nodes), fmt_count(p.after.nodes)),
                arrow(
                    fmt_count(p.before.parameters),
                    fmt_count(p.after.parameters),
                ),
                arrow(
                    fmt_bytes(p.before.parameter_bytes),
                    fmt_bytes(p.after.parameter_bytes),
                ),
                arrow(fmt_count(p.before.flops), fmt_count(p.after.flops)),
            ];
            if with_time {
                r.push(format!("{:.1} ms", p.time_ms));
            }
            rows.push(r);
        }
        let ncol = rows[0].len();
        let widths: Vec<usize> = (0..ncol)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for r in &rows {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| format!("{s}{}", " ".repeat(widths[c] - s.chars().count())))
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        for p in &self.passes {
            for n in &p.notes {
                out.push_str(&format!("{}: {n}\n", p.pass));
            }
        }
        if let Some(n) = self.stopped_after {
            out.push_str(&format!("stopped after pass {n} (--stop-after)\n"));
        }
        out
    }
}

impl fmt::Display for PipelineReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.table(true))
    }
}

#[cfg(test)]
mod tests;
