//! pool (stub).

use super::{Ctx, NodeIo, R};

/// Lowers the ops of this family.
pub(crate) fn lower(_cx: &mut Ctx, io: &NodeIo) -> R<()> {
    Err(format!("{} is not lowered yet", io.op().op_type()))
}

/// Why a pooling node cannot be lowered, if it cannot.
pub(crate) fn check(_g: &smelt_ir::Graph, _id: smelt_ir::NodeId) -> R<()> {
    Ok(())
}
