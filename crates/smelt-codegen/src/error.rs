//! The one error type of the native backend.

use smelt_ir::DType;

/// A node the backend cannot lower, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// The node's display name (its name, or its first output's name).
    pub node: String,
    /// The node's op type.
    pub op: String,
    /// Why it cannot be lowered.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node `{}` ({}): {}", self.node, self.op, self.reason)
    }
}

/// Everything that can stop compilation or a run.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// Nodes the backend cannot lower: every one of them, in topological order.
    #[error("the native backend cannot lower {} node(s):{}", nodes.len(), list(nodes))]
    Unsupported {
        /// (node, op, reason) for every unsupported node.
        nodes: Vec<(String, String, String)>,
    },
    /// A value still has no static shape after binding.
    #[error("value `{value}` has no static shape after binding ({ty}); give the input shapes")]
    UnboundShape {
        /// The value's name.
        value: String,
        /// Its type as far as it is known.
        ty: String,
    },
    /// A shape given for binding does not fit the graph.
    #[error("cannot bind input shapes: {0}")]
    Bind(String),
    /// The graph is invalid (the verifier or shape inference refused it).
    #[error("invalid graph: {0}")]
    InvalidGraph(String),
    /// An input handed to `run` has the wrong dtype, shape or size.
    #[error("input {index} (`{name}`): expected {expected}, got {got}")]
    BadInput {
        /// Position of the input.
        index: usize,
        /// Its name.
        name: String,
        /// What the compiled model takes.
        expected: String,
        /// What was given.
        got: String,
    },
    /// An output buffer handed to `run_into` has the wrong dtype or size.
    #[error("output {index} (`{name}`): expected {expected}, got {got}")]
    BadOutput {
        /// Position of the output.
        index: usize,
        /// Its name.
        name: String,
        /// What the compiled model writes.
        expected: String,
        /// What was given.
        got: String,
    },
    /// Cranelift refused the generated code (a bug in smelt: please report it).
    #[error("cranelift: {0}")]
    Cranelift(String),
    /// The native function returned a non-zero status.
    #[error("the compiled model returned status {0}")]
    Status(i32),
    /// Memory for the arena or an output could not be allocated (a model whose bound shapes
    /// need more than the machine has).
    #[error("cannot allocate {bytes} bytes for {what}")]
    Alloc {
        /// What the memory was for.
        what: String,
        /// How much was asked for.
        bytes: u64,
    },
}

/// A zeroed vector of `n` elements, or [`CodegenError::Alloc`] instead of aborting the
/// process when the allocator refuses.
pub(crate) fn try_zeroed<T: Clone>(n: usize, zero: T, what: &str) -> Result<Vec<T>, CodegenError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| CodegenError::Alloc {
        what: what.to_string(),
        bytes: (n as u64).saturating_mul(std::mem::size_of::<T>() as u64),
    })?;
    v.resize(n, zero);
    Ok(v)
}

fn list(nodes: &[(String, String, String)]) -> String {
    nodes
        .iter()
        .map(|(n, o, r)| format!("\n  node `{n}` ({o}): {r}"))
        .collect()
}

impl CodegenError {
    pub(crate) fn unsupported(list: Vec<Unsupported>) -> CodegenError {
        CodegenError::Unsupported {
            nodes: list.into_iter().map(|u| (u.node, u.op, u.reason)).collect(),
        }
    }
}

impl From<cranelift_module::ModuleError> for CodegenError {
    fn from(e: cranelift_module::ModuleError) -> Self {
        CodegenError::Cranelift(format!("{e:?}"))
    }
}

/// Describes a dtype and dims as `f32[1,3]`.
pub(crate) fn describe(dtype: DType, dims: &[usize]) -> String {
    let d: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("{dtype}[{}]", d.join(","))
}
