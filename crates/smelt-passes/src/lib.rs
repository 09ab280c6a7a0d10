//! smelt-passes: the optimisation passes, the pipeline that runs them, and the reference
//! evaluator constant folding uses.
//!
//! # Using it
//!
//! ```
//! use smelt_passes::{Pipeline, PassCtx, RunOptions};
//! # let mut graph = smelt_ir::Graph::new("g");
//! let pipeline = Pipeline::parse("fold,quantize(per_channel=true)")?;
//! let report = pipeline
//!     .run(&mut graph, &mut PassCtx::new(), &RunOptions::default())
//!     .map_err(|e| e.error)?;
//! println!("{report}"); // the table; report.to_json() for --json
//! # Ok::<(), smelt_passes::PassError>(())
//! ```
//!
//! `smelt opt --verify each --passes "fold,quantize(calib=x.pb,max_error=0.01)"` wires a runner
//! (JIT or tract), a tensor loader and the comparison inputs:
//!
//! ```
//! use smelt_passes::{eval::ReferenceRunner, PassCtx, Pipeline, PrintIr, RunOptions, VerifyEach};
//! # let mut graph = smelt_ir::Graph::new("g");
//! let runner = ReferenceRunner; // the library passes its JIT or tract runner
//! let loader = |path: &str| -> Result<smelt_ir::Tensor, String> { Err(format!("{path}?")) };
//! let mut cx = PassCtx::with(Some(&runner), Some(&loader));
//! let opts = RunOptions {
//!     verify_each: Some(VerifyEach { runner: &runner, inputs: vec![], rtol: 1e-4, atol: 1e-5 }),
//!     print_ir: PrintIr::After(vec!["fold".into()]),
//!     stop_after: None,
//!     verify_ir: true,
//! };
//! match Pipeline::parse("fold")?.run(&mut graph, &mut cx, &opts) {
//!     Ok(report) => print!("{report}"),
//!     // e.g. "--verify each: outputs drift after pass 2 `x`; first differing node `conv3` …"
//!     Err(e) => eprint!("{}\n{}", e.error, e.report),
//! }
//! # Ok::<(), smelt_passes::PassError>(())
//! ```
//!
//! - [`Pass`] — `name()` (CLI-stable) and `run(&mut Graph, &mut PassCtx) -> Result<Changed,
//!   PassError>`; `exact()` says whether it keeps the outputs (lossy passes say false).
//! - [`PassCtx`] — what a pass may use: a [`Runner`] (the library implements it with the JIT or
//!   tract; this crate depends on no backend), a [`TensorLoader`] for files named in options
//!   (`calib=x.pb`; the library implements it with its TensorProto reader) and a report sink
//!   ([`PassCtx::note`]).
//! - [`spec`] — the `--passes` parser (`fold,quantize(bits=8,per_channel=true)`), errors with
//!   columns; [`registry`] lists every pass and its options alphabetically.
//! - [`Pipeline`] — runs passes in order; [`RunOptions`] sets the verifier after each pass
//!   (`verify_ir`, on in debug builds), `stop_after` (`--stop-after N`), `print_ir`
//!   (`--print-ir-after PASS`, `--print-ir-after-all`: the texts are collected in
//!   [`PipelineReport::ir_after`]) and `verify_each` (`--verify each`: see [`pipeline`] for how
//!   the first drifting pass and node are found; [`pipeline::compare_graphs`] is the same
//!   check on two graphs).
//! - [`PipelineReport`] — per pass: nodes, parameters, parameter bytes, FLOPs ([`cost`])
//!   before → after, time and notes; `Display` is the table, [`PipelineReport::to_json`] the
//!   JSON.
//! - [`eval`] — the reference evaluator ([`eval::eval_op`], [`eval::run_graph`],
//!   [`eval::ReferenceRunner`]).
//!
//! # Passes (alphabetical)
//!
//! - [`fold`] — constant folding, shape folding, If inlining, BatchNormalization into
//!   Conv/Gemm/MatMul, Identity/Dropout removal, dead code, constant and node deduplication,
//!   QuantizeLinear on constants; exact.
//! - [`merge`] — an ensemble of models into one graph ([`merge::merge_models`]; many graphs →
//!   one, so a function rather than a `--passes` entry; `smelt merge` on the command line):
//!   mean/weighted/normalized/vote/soup, structural fusion of same-shaped members; exact for
//!   the linear combinations.
//! - [`quantize`] — weight-only int8 for Gemm/MatMul/Conv weights; lossy.
//!
//! # Rules every pass keeps
//!
//! - Graph outputs keep their names; a value name means the same numbers before and after a
//!   pass (the result of a rewrite takes the name of the value it replaces).
//! - An exact rewrite never makes the graph costlier (nodes, FLOPs); inside a pass, rewrites
//!   iterate to a fixpoint behind a loop guard.
//! - No panic on model input: what a pass cannot handle it leaves alone.

pub mod cost;
pub mod eval;
pub mod fold;
pub mod merge;
pub mod pass;
pub mod pipeline;
pub mod quantize;
pub mod registry;
pub mod spec;
mod util;

#[cfg(test)]
mod testutil;

pub use pass::{Changed, Pass, PassCtx, PassError, Runner, TensorLoader};
pub use pipeline::{Pipeline, PipelineError, PipelineReport, PrintIr, RunOptions, VerifyEach};
