//! Control flow: `If` whose condition is only known at run time. Both branches are lowered
//! into the one function as Cranelift blocks behind a branch on the condition; each branch
//! has its own memory plan inside the `If` node's arena scratch (sized for the larger one),
//! reads the values it captures through the node's trailing inputs and writes the node's
//! outputs directly. Branch outputs must have the `If` outputs' static shapes.
//! (`Loop` is not lowered yet.)

use super::{lower_body, swap_frame, unsupported_nodes, Ctx, NodeIo, R};
use crate::plan::MemoryPlan;
use cranelift_codegen::ir::{types, InstBuilder};
use smelt_ir::{DType, Graph, NodeId, Op};

fn branches(g: &Graph, id: NodeId) -> Option<[&Graph; 2]> {
    match &g.node(id).op {
        Op::If(o) => Some([&o.then_branch, &o.else_branch]),
        _ => None,
    }
}

/// Why an `If` node cannot be lowered, if it cannot.
pub(crate) fn check_if(g: &Graph, id: NodeId) -> R<()> {
    let [then_b, else_b] = branches(g, id).ok_or("not an If")?;
    let cond = g.node_inputs(id).first().copied().flatten();
    if cond.and_then(|v| g.value_type(v).dtype()) != Some(DType::Bool) {
        return Err("If's condition must be bool".into());
    }
    let mut problems = vec![];
    for (name, b) in [("then", then_b), ("else", else_b)] {
        for u in unsupported_nodes(b) {
            problems.push(format!("{name} branch: {u}"));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let node = g.node(id);
    for (k, v) in node.outputs.iter().enumerate() {
        let want = v.ty.static_dims();
        for (name, b) in [("then", then_b), ("else", else_b)] {
            let got = b
                .outputs()
                .get(k)
                .map(|o| (b.value_type(*o).static_dims(), b.value_type(*o).dtype()));
            match (got, want.as_ref()) {
                (Some((Some(d), Some(t))), Some(w)) if &d == w && Some(t) == v.ty.dtype() => {}
                (_, None) => {}
                (got, Some(w)) => {
                    return Err(format!(
                        "{name} branch output {k} has shape {:?}, the If output `{}` {w:?}: \
                         branch outputs must have the same static shape",
                        got.and_then(|g| g.0),
                        v.name
                    ))
                }
            }
        }
    }
    Ok(())
}

fn branch_plan(b: &Graph) -> R<MemoryPlan> {
    MemoryPlan::new(b, &super::scratch_bytes)
}

/// Arena bytes for the larger branch.
pub(crate) fn scratch_bytes(g: &Graph, id: NodeId) -> u64 {
    branches(g, id)
        .map(|bs| {
            bs.iter()
                .filter_map(|b| branch_plan(b).ok())
                .map(|p| p.arena_bytes)
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Lowers `If`.
pub(crate) fn lower_if(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    let [then_b, else_b] = branches(io.g, io.id).ok_or("not an If")?;
    let cond = cx.addr(io.g, io.input(0)?)?;
    let c = cx.load(types::I8, cond, 0);
    let mut outs = vec![];
    for o in &io.outs {
        let o = o.as_ref().ok_or("an If output is unused: not supported")?;
        outs.push(cx.addr(io.g, o)?);
    }
    let base = match io.scratch {
        Some(off) => cx.offset(cx.arena(), off as i64),
        None => cx.arena(),
    };
    let yes = cx.b.create_block();
    let no = cx.b.create_block();
    let done = cx.b.create_block();
    cx.b.ins().brif(c, yes, &[], no, &[]);
    let mut problems = vec![];
    for (blk, b) in [(yes, then_b), (no, else_b)] {
        cx.b.seal_block(blk);
        cx.b.switch_to_block(blk);
        // The branch's captures are the node's trailing inputs, in order.
        let n_caps = b.captures().len();
        let first = io
            .ins
            .len()
            .checked_sub(n_caps)
            .ok_or("captures do not fit")?;
        let mut caps = vec![];
        for o in &io.ins[first..] {
            let o = o.as_ref().ok_or("a captured value is missing")?;
            caps.push(cx.addr(io.g, o)?);
        }
        let plan = branch_plan(b)?;
        let old = swap_frame(cx, (vec![], outs.clone(), caps, base));
        let mut errors = vec![];
        lower_body(cx, b, &plan, &mut errors);
        swap_frame(cx, old);
        problems.extend(errors.into_iter().map(|u| u.to_string()));
        cx.b.ins().jump(done, &[]);
    }
    cx.b.seal_block(done);
    cx.b.switch_to_block(done);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
