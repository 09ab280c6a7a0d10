//! The [`Pass`] trait and what a pass sees while it runs: [`PassCtx`], [`Runner`],
//! [`Changed`], [`PassError`].

use crate::spec::SpecError;
use smelt_ir::{Graph, GraphError, Tensor, VerifyErrors};

/// One graph rewrite, named and configured from the `--passes` spec.
///
/// A pass rewrites the graph in place and says whether it changed anything; the pipeline
/// measures the graph before and after (nodes, parameters, bytes, FLOPs) and times it. A pass
/// never panics on model input: what it cannot do it leaves alone (and may say so with
/// [`PassCtx::note`]), what is wrong it returns as a [`PassError`].
pub trait Pass {
    /// The CLI-stable name (kebab-case), as in the `--passes` spec.
    fn name(&self) -> &'static str;
    /// Rewrites `g` in place.
    fn run(&self, g: &mut Graph, cx: &mut PassCtx) -> Result<Changed, PassError>;
    /// True when the rewrite keeps the graph's outputs (up to float rounding); lossy passes
    /// (quantize, prune, …) say false, and `--verify each` compares values only after exact
    /// passes.
    fn exact(&self) -> bool {
        true
    }
}

/// What a pass changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Changed {
    /// Number of rewrites applied (0: the graph is unchanged).
    pub rewrites: usize,
}

impl Changed {
    /// Nothing changed.
    pub const NONE: Changed = Changed { rewrites: 0 };

    /// `n` rewrites.
    pub fn count(n: usize) -> Changed {
        Changed { rewrites: n }
    }

    /// True when the graph changed.
    pub fn any(self) -> bool {
        self.rewrites > 0
    }
}

/// Runs a graph on concrete inputs: the library implements it with the JIT or with tract, so
/// that this crate depends on no backend ([`crate::eval::ReferenceRunner`] is the evaluator's).
pub trait Runner {
    /// The graph outputs, in order, for `inputs` given in graph-input order.
    fn run(&self, g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, String>;
}

/// Reads a tensor file named in a pass option (`calib=x.pb`): the library implements it with
/// the ONNX TensorProto (and `.npy`) readers, so that this crate parses no file format.
pub trait TensorLoader {
    /// The tensor stored at `path`.
    fn load(&self, path: &str) -> Result<Tensor, String>;
}

impl<F: Fn(&str) -> Result<Tensor, String>> TensorLoader for F {
    fn load(&self, path: &str) -> Result<Tensor, String> {
        self(path)
    }
}

/// What a pass may use while it runs, and where it reports.
#[derive(Default)]
pub struct PassCtx<'a> {
    runner: Option<&'a dyn Runner>,
    loader: Option<&'a dyn TensorLoader>,
    notes: Vec<String>,
}

impl<'a> PassCtx<'a> {
    /// A context without a runner.
    pub fn new() -> PassCtx<'a> {
        PassCtx::default()
    }

    /// A context whose passes may run graphs with `runner` (calibration, sensitivity).
    pub fn with_runner(runner: &'a dyn Runner) -> PassCtx<'a> {
        PassCtx::with(Some(runner), None)
    }

    /// A context with a runner and a tensor-file loader, either optional.
    pub fn with(
        runner: Option<&'a dyn Runner>,
        loader: Option<&'a dyn TensorLoader>,
    ) -> PassCtx<'a> {
        PassCtx {
            runner,
            loader,
            notes: vec![],
        }
    }

    /// Reads a tensor file named in an option, with the caller's loader.
    pub fn load_tensor(&self, path: &str) -> Result<Tensor, String> {
        match self.loader {
            Some(l) => l.load(path),
            None => Err(format!("cannot read `{path}`: no tensor loader was given")),
        }
    }

    /// The runner, if the caller gave one.
    pub fn runner(&self) -> Option<&'a dyn Runner> {
        self.runner
    }

    /// Adds a line to the current pass's report (what it left alone and why, …).
    pub fn note(&mut self, msg: impl Into<String>) {
        self.notes.push(msg.into());
    }

    /// Takes the notes written so far.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }
}

/// Everything that can go wrong while building or running passes.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The `--passes` spec does not parse or names unknown passes or options.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A pass option has a value the pass cannot use.
    #[error("pass `{pass}`: option `{option}`: {msg}")]
    BadOption {
        /// The pass.
        pass: &'static str,
        /// The option.
        option: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// The graph given to the pipeline does not verify.
    #[error("the input graph is invalid: {0}")]
    InvalidInput(VerifyErrors),
    /// A pass left a graph that does not verify: a bug in the pass.
    #[error("pass `{pass}` left an invalid graph: {errors}")]
    Invalid {
        /// The pass.
        pass: String,
        /// The verifier's findings.
        errors: VerifyErrors,
    },
    /// A graph edit failed.
    #[error("pass `{pass}`: {source}")]
    Graph {
        /// The pass.
        pass: &'static str,
        /// The edit's error.
        source: GraphError,
    },
    /// The pass needs a runner and the context has none, or the runner failed.
    #[error("pass `{pass}`: {msg}")]
    Runner {
        /// The pass (or `verify-each`).
        pass: String,
        /// What happened.
        msg: String,
    },
    /// `--verify each`: a pass changed the graph's values.
    #[error("{0}")]
    Drift(Box<crate::pipeline::Drift>),
    /// Anything else a pass refuses to do.
    #[error("pass `{pass}`: {msg}")]
    Failed {
        /// The pass.
        pass: &'static str,
        /// What happened.
        msg: String,
    },
}
