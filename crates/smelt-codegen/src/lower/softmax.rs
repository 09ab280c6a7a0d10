//! softmax (stub).

use super::{Ctx, NodeIo, R};

/// Lowers the ops of this family.
pub(crate) fn lower(_cx: &mut Ctx, io: &NodeIo) -> R<()> {
    Err(format!("{} is not lowered yet", io.op().op_type()))
}
