//! Errors of the ONNX front and back ends.

use std::path::PathBuf;

/// Why a model could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// The bytes are not a valid protobuf message of the expected kind.
    #[error("not a valid ONNX {what}: {msg}")]
    Protobuf {
        /// What was expected (`model`, `tensor`).
        what: &'static str,
        /// The decoder's message.
        msg: String,
    },
    /// A tensor (initializer, Constant value, attribute or data file) is malformed.
    #[error("tensor `{name}`: {msg}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        msg: String,
    },
    /// A node is malformed.
    #[error("node `{node}` ({op_type}): {msg}")]
    Node {
        /// The node's name (or its first output).
        node: String,
        /// Its op type.
        op_type: String,
        /// What is wrong.
        msg: String,
    },
    /// The graph is malformed.
    #[error("graph `{graph}`: {msg}")]
    Graph {
        /// The graph's name.
        graph: String,
        /// What is wrong.
        msg: String,
    },
    /// The model uses something this reader refuses rather than drops.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Why a model could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing failed.
    #[error("cannot write {path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// A node cannot be expressed at the model's opset.
    #[error("node `{node}` ({op_type}): {msg}")]
    Node {
        /// The node's name.
        node: String,
        /// Its op type.
        op_type: String,
        /// What is wrong.
        msg: String,
    },
    /// The graph is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Protobuf encoding failed.
    #[error("protobuf encoding failed: {0}")]
    Protobuf(String),
}
