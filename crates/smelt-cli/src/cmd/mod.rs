//! One module per subcommand.

pub mod check;
pub mod inspect;
pub mod merge;
pub mod opt;
pub mod run;
pub mod verify;

use anyhow::{Context, Result};
use std::path::Path;

/// Loads a model file, with the file named in any error.
pub fn load(path: &Path) -> Result<smelt::Model> {
    smelt::load(path).with_context(|| format!("cannot load {}", path.display()))
}
