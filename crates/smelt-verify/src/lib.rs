//! smelt-verify: runs models with tract and compares outputs.
//!
//! tract is smelt's independent reference: `smelt verify`, `smelt opt --verify`, `smelt run
//! --backend tract` and the conformance tests run models through it, and [`compare`] says how
//! far two sets of outputs are apart. Nothing here uses smelt's own evaluator.

pub mod compare;
pub mod random;
pub mod tract_run;

pub use compare::{compare, compare_all, Comparison, Tolerance};
pub use random::random_inputs;
pub use tract_run::{run_tract_bytes, run_tract_path, TractModel};

/// Why a model could not be run or compared.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// tract refused or failed on the model.
    #[error("tract: {0}")]
    Tract(String),
    /// A tensor cannot be handed to tract (or read back from it).
    #[error("unsupported tensor: {0}")]
    Unsupported(String),
    /// Inputs do not fit the model.
    #[error("{0}")]
    Inputs(String),
}
