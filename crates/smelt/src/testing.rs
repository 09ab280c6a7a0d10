//! Testing graph rewrites as text: parse a graph written in the text form, run passes on it
//! with the verifier on, and get the rewritten graph's text back — the string a snapshot test
//! compares (with `insta::assert_snapshot!`, or by hand).
//!
//! The input is the text form of docs/ir.md: a graph (`graph g(x: f32[2]) -> (y: f32[2]) { … }`),
//! optionally under a `model ir_version=… opset(…)` line. Constants are written inline
//! (`const f32[2,2] [1, 2, 3, 4]`) or generated (`const f32[64,64] random(seed=3)`); a `#hash`
//! constant is an error here, since no blob file stands behind a test's text. Types after
//! ` : ` may be left out: they are inferred before the passes run.
//!
//! ```
//! let out = smelt::testing::run_passes(
//!     "graph g(x: f32[2]) -> (y: f32[2]) {
//!        %a = const f32[2] [1, 2]
//!        %b = const f32[2] [3, 4]
//!        %c = Add(%a, %b)
//!        %y = Mul(%x, %c)
//!        return %y
//!      }",
//!     "fold",
//! )?;
//! // In a test: insta::assert_snapshot!(out);
//! assert_eq!(
//!     out,
//!     "graph g(x: f32[2]) -> (y: f32[2]) {
//!   %c = const f32[2] [4.0, 6.0]
//!   %y = Mul(%x, %c) : f32[2]
//!   return %y
//! }
//! "
//! );
//! # Ok::<(), smelt::testing::TestingError>(())
//! ```
//!
//! A pass of your own is tested the same way with [`run_pass`] (`examples/custom_pass.rs`).
//! Errors render for people: a text that does not parse names the line and column and shows
//! the line with a caret under the problem. docs/testing.md has the ten-line version and the
//! filetest format smelt's own passes are tested with.

use smelt_ir::text::{NoConsts, ParseError};
use smelt_ir::{Model, VerifyErrors};
use smelt_passes::{Pass, PassCtx, PassError, Pipeline, PipelineReport, RunOptions};

/// What can go wrong while testing a rewrite.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// The text does not parse; `rendered` is the error with its line and a caret
    /// (`3:17: expected `)` but found `,`` then the line).
    #[error("{rendered}")]
    Parse {
        /// The parser's error (line, column, what was expected).
        error: ParseError,
        /// The error as a person reads it: position, message, the line and a caret.
        rendered: String,
    },
    /// The text parses but its types do not fit its ops (one line per problem).
    #[error("types do not fit the ops: {0}")]
    Infer(String),
    /// The graph does not verify before any pass ran.
    #[error("the input graph is invalid: {0}")]
    Invalid(VerifyErrors),
    /// A pass failed, or left a graph the verifier rejects (a bug in the pass).
    #[error(transparent)]
    Pass(#[from] PassError),
}

/// A rewritten graph: its text and what the passes reported.
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The graph after the passes, in the text form.
    pub text: String,
    /// The notes the passes wrote (what they folded, what they left alone and why), in order.
    pub notes: Vec<String>,
}

/// A parsed test input.
struct Input {
    model: Model,
    /// The text had a `model …` line: print the model, not only its graph.
    header: bool,
}

impl Input {
    fn parse(text: &str) -> Result<Input, TestingError> {
        let mut model = Model::from_text(text, &NoConsts).map_err(|error| TestingError::Parse {
            rendered: error.render(text),
            error,
        })?;
        smelt_ir::infer::infer_graph(&mut model.graph).map_err(|errs| {
            TestingError::Infer(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        smelt_ir::verify(&model.graph).map_err(TestingError::Invalid)?;
        Ok(Input {
            model,
            header: has_model_header(text),
        })
    }

    fn print(&self) -> String {
        if self.header {
            self.model.to_text()
        } else {
            self.model.graph.to_text()
        }
    }
}

/// True when the first token of `text` (after whitespace and `;` comments) is `model`.
fn has_model_header(text: &str) -> bool {
    text.lines()
        .map(|l| l.split(';').next().unwrap_or("").trim())
        .find(|l| !l.is_empty())
        .is_some_and(|l| l == "model" || l.starts_with("model "))
}

/// Parses `text`, infers its types, verifies it, runs the passes of `spec` (the `--passes`
/// syntax: `"fold,quantize(bits=4,block=32)"`) with the verifier after each, and returns the
/// rewritten graph's text.
pub fn run_passes(text: &str, spec: &str) -> Result<String, TestingError> {
    run_passes_report(text, spec).map(|r| r.text)
}

/// [`run_passes`], with the notes the passes wrote.
pub fn run_passes_report(text: &str, spec: &str) -> Result<Rewritten, TestingError> {
    let mut input = Input::parse(text)?;
    let pipeline = Pipeline::parse(spec)?;
    let opts = RunOptions {
        verify_ir: true,
        ..RunOptions::default()
    };
    let report = pipeline
        .run(&mut input.model.graph, &mut PassCtx::new(), &opts)
        .map_err(|e| TestingError::Pass(e.error))?;
    Ok(Rewritten {
        text: input.print(),
        notes: notes(&report),
    })
}

fn notes(report: &PipelineReport) -> Vec<String> {
    report
        .passes
        .iter()
        .flat_map(|p| p.notes.iter().cloned())
        .collect()
}

/// Parses `text` like [`run_passes`] and runs one pass of your own on it, then the verifier;
/// returns the rewritten graph's text.
pub fn run_pass(text: &str, pass: &dyn Pass) -> Result<String, TestingError> {
    let mut input = Input::parse(text)?;
    pass.run(&mut input.model.graph, &mut PassCtx::new())?;
    smelt_ir::verify(&input.model.graph).map_err(|errors| PassError::Invalid {
        pass: pass.name().to_string(),
        errors,
    })?;
    Ok(input.print())
}

/// The text as the printer writes it after parsing and type inference: what a pass that
/// changes nothing returns (an expectation written loosely, made exact).
pub fn normalize(text: &str) -> Result<String, TestingError> {
    Ok(Input::parse(text)?.print())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_line_and_column() {
        let e = run_passes(
            "graph g(x: f32[2]) -> (y: f32[2]) {\n  %y = Relu(%x,,)\n}",
            "fold",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("2:"), "{msg}");
        assert!(msg.contains('^'), "{msg}");
    }

    #[test]
    fn bad_spec_is_a_pass_error() {
        let e = run_passes(
            "graph g(x: f32[2]) -> (y: f32[2]) { %y = Relu(%x) return %y }",
            "fodl",
        )
        .unwrap_err();
        assert!(matches!(e, TestingError::Pass(PassError::Spec(_))), "{e}");
    }

    #[test]
    fn a_model_header_is_kept() {
        let out = normalize(
            "model ir_version=8 opset(ai.onnx=17)\ngraph g(x: f32[2]) -> (y: f32[2]) {\n  %y = Relu(%x)\n  return %y\n}",
        )
        .unwrap();
        assert!(out.starts_with("model ir_version=8"), "{out}");
    }
}
