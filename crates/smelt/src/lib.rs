//! smelt: an ahead-of-time compiler for ONNX models.
//!
//! This crate is the public library API. It re-exports the stages (each its own crate, see
//! ARCHITECTURE.md) and adds what ties them together: loading a model from any supported
//! form, model statistics for `smelt inspect`, and (later) the build-step API.
//!
//! ```no_run
//! let model = smelt::load("model.onnx".as_ref())?;
//! println!("{}", model.to_text());
//! smelt::onnx::save_model(&model, "out.onnx".as_ref(), &Default::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod stats;

pub use smelt_codegen as codegen;
pub use smelt_ir as ir;
pub use smelt_onnx as onnx;
pub use smelt_passes as passes;
pub use smelt_verify as verify;

pub use smelt_ir::{Graph, Model, Tensor};

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a model failed.
    #[error(transparent)]
    Import(#[from] smelt_onnx::ImportError),
    /// Writing a model failed.
    #[error(transparent)]
    Export(#[from] smelt_onnx::ExportError),
    /// The graph is invalid.
    #[error(transparent)]
    Invalid(#[from] smelt_ir::VerifyErrors),
}

/// Loads a model file (ONNX).
pub fn load(path: &std::path::Path) -> Result<Model, Error> {
    let m = smelt_onnx::load_model(path)?;
    smelt_ir::verify(&m.graph)?;
    Ok(m)
}
