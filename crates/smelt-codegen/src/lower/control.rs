//! Control flow: `If` whose condition is only known at run time. Both branches are lowered
//! into the one function as Cranelift blocks behind a branch on the condition; each branch
//! has its own memory plan inside the `If` node's arena scratch (sized for the larger one),
//! reads the values it captures through the node's trailing inputs and writes the node's
//! outputs directly. Branch outputs must have the `If` outputs' static shapes.
//! `Loop` runs as a native loop (see [`lower_loop`]).

use super::{lower_body, swap_frame, unsupported_nodes, Ctx, NodeIo, R};
use crate::plan::MemoryPlan;
use cranelift_codegen::ir::{types, InstBuilder};
use smelt_ir::{DType, Graph, NodeId, Op, ValueId};

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

/// The body of a `Loop` and its counts: (body, carried N, scan outputs K).
fn loop_body(g: &Graph, id: NodeId) -> Option<(&Graph, usize, usize)> {
    match &g.node(id).op {
        Op::Loop(o) => {
            let n = o.body.inputs().len().checked_sub(2)?;
            let k = o.body.outputs().len().checked_sub(1 + n)?;
            Some((&o.body, n, k))
        }
        _ => None,
    }
}

/// The iteration count the static shapes of a Loop's scan outputs imply (all must agree).
fn scan_count(g: &Graph, id: NodeId) -> Option<usize> {
    let (body, n, k) = loop_body(g, id)?;
    let node = g.node(id);
    let mut m = None;
    for j in 0..k {
        let o = node.outputs.get(n + j)?;
        let dims = o.ty.static_dims()?;
        let slice = body.value_type(body.outputs()[1 + n + j]).static_dims()?;
        if dims.len() != slice.len() + 1 || dims[1..] != slice[..] {
            return None;
        }
        if m.is_some_and(|m| m != dims[0]) {
            return None;
        }
        m = Some(dims[0]);
    }
    m
}

/// Why a `Loop` node cannot be lowered, if it cannot.
pub(crate) fn check_loop(g: &Graph, id: NodeId) -> R<()> {
    let (body, n, k) = loop_body(g, id).ok_or("the Loop body's inputs and outputs do not fit")?;
    let trip = g.node_inputs(id).first().copied().flatten();
    let trip_const = trip
        .and_then(|v| g.const_value(v))
        .and_then(|t| t.to_i64_vec())
        .is_some_and(|v| v.len() == 1);
    if k > 0 && !trip_const && scan_count(g, id).is_none() {
        return Err("scan outputs need a constant trip count or static shapes".into());
    }
    let problems: Vec<String> = unsupported_nodes(body)
        .into_iter()
        .map(|u| format!("body: {u}"))
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let ins = body.inputs();
    let outs = body.outputs();
    for k in 0..n {
        let a = body.value_type(ins[2 + k]);
        let b = body.value_type(outs[1 + k]);
        if a.static_dims().is_some() && b.static_dims().is_some() && a != b {
            return Err(format!(
                "loop-carried value {k} enters the body as {a} and leaves it as {b}"
            ));
        }
    }
    Ok(())
}

/// Bytes of a value's static shape.
fn bytes_of(g: &Graph, v: ValueId) -> usize {
    crate::plan::value_bytes(g, v) as usize
}

fn align64(n: usize) -> usize {
    n.div_ceil(64) * 64
}

/// Scratch layout of a Loop: body arena, then iteration number, condition, next condition,
/// the carried state and the body's next state.
struct LoopFrame {
    body_arena: usize,
    iter: usize,
    cond: usize,
    cond_next: usize,
    state: Vec<usize>,
    next: Vec<usize>,
    total: usize,
}

fn loop_frame(g: &Graph, id: NodeId) -> R<LoopFrame> {
    let (body, n, _) = loop_body(g, id).ok_or("not a Loop")?;
    let plan = branch_plan(body)?;
    let mut at = align64(plan.arena_bytes as usize);
    let iter = at;
    at += 64;
    let cond = at;
    at += 64;
    let cond_next = at;
    at += 64;
    let ins = body.inputs();
    let mut state = vec![];
    for k in 0..n {
        state.push(at);
        at += align64(bytes_of(body, ins[2 + k]));
    }
    let mut next = vec![];
    for k in 0..n {
        next.push(at);
        at += align64(bytes_of(body, ins[2 + k]));
    }
    Ok(LoopFrame {
        body_arena: 0,
        iter,
        cond,
        cond_next,
        state,
        next,
        total: at,
    })
}

/// Arena bytes of a Loop (see [`LoopFrame`]).
pub(crate) fn loop_scratch_bytes(g: &Graph, id: NodeId) -> u64 {
    loop_frame(g, id).map(|f| f.total as u64).unwrap_or(0)
}

/// Lowers `Loop` as a native loop: the trip count and the condition are checked before every
/// iteration; carried values live in scratch, double-buffered; scan outputs are written
/// straight into their slot of the stacked output.
pub(crate) fn lower_loop(cx: &mut Ctx, io: &NodeIo) -> R<()> {
    use super::shape::{copy_bytes, fill};
    use cranelift_codegen::ir::condcodes::IntCC;
    let (body, n, k) = loop_body(io.g, io.id).ok_or("not a Loop")?;
    let fr = loop_frame(io.g, io.id)?;
    let plan = branch_plan(body)?;
    let base = match io.scratch {
        Some(off) => cx.offset(cx.arena(), off as i64),
        None => return Err("Loop needs scratch space".into()),
    };
    let at = |cx: &mut Ctx, off: usize| cx.offset(base, off as i64);
    let iter_p = at(cx, fr.iter);
    let cond_p = at(cx, fr.cond);
    let cond_next_p = at(cx, fr.cond_next);
    let state: Vec<_> = fr.state.iter().map(|o| at(cx, *o)).collect();
    let next: Vec<_> = fr.next.iter().map(|o| at(cx, *o)).collect();
    let body_in = body.inputs();
    let sizes: Vec<usize> = (0..n).map(|j| bytes_of(body, body_in[2 + j])).collect();
    // Initial condition and state.
    match io.opt_input(1) {
        Some(c) => {
            let src = cx.addr(io.g, c)?;
            copy_bytes(cx, src, cond_p, 1)?;
        }
        None => fill(cx, cond_p, 1, &[1])?,
    }
    for j in 0..n {
        let v = io.input(2 + j)?;
        if v.len() * v.elem() != sizes[j] {
            return Err(format!("loop-carried value {j} does not fit the body"));
        }
        let src = cx.addr(io.g, v)?;
        copy_bytes(cx, src, state[j], sizes[j])?;
    }
    let trip = match io.opt_input(0) {
        Some(m) => {
            let p = cx.addr(io.g, m)?;
            Some(cx.load(types::I64, p, 0))
        }
        None => None,
    };
    // Scan outputs: the node's outputs N.., one slice per iteration. Their static shapes fix
    // the iteration count (the constant trip count, else their leading dim); a run that would
    // take another number of iterations stops with a non-zero status instead of writing
    // past them or leaving slices unwritten.
    let trip_const = io.const_ints(0).and_then(|v| v.first().copied());
    let scan_m = if k == 0 {
        None
    } else {
        match trip_const {
            Some(m) => Some(m.max(0)),
            None => Some(
                scan_count(io.g, io.id)
                    .ok_or("scan outputs need a constant trip count or static shapes")?
                    as i64,
            ),
        }
    };
    let mut scans = vec![];
    for j in 0..k {
        let o = io.output(n + j)?;
        let slice = bytes_of(body, body.outputs()[1 + n + j]);
        let m = scan_m.ok_or("scan outputs need a constant trip count")?;
        if o.len() * o.elem() != slice * m as usize {
            return Err(format!(
                "scan output {j} has {} bytes, {m} iterations of {slice} need more",
                o.len() * o.elem()
            ));
        }
        let p = cx.addr(io.g, o)?;
        scans.push((p, slice));
    }
    let n_caps = body.captures().len();
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

    let head = cx.b.create_block();
    let work = cx.b.create_block();
    let exit = cx.b.create_block();
    cx.b.append_block_param(head, types::I64);
    let zero = cx.iconst(0);
    cx.b.ins().jump(head, &[zero.into()]);
    cx.b.switch_to_block(head);
    let i = cx.b.block_params(head)[0];
    let cv = cx.load(types::I8, cond_p, 0);
    let go = cx.b.ins().icmp_imm_s(IntCC::NotEqual, cv, 0);
    let go = match trip {
        Some(m) => {
            let more = cx.b.ins().icmp(IntCC::SignedLessThan, i, m);
            cx.b.ins().band(go, more)
        }
        None => go,
    };
    let fail = scan_m.map(|_| cx.b.create_block());
    match (scan_m, fail) {
        (Some(m), Some(fail)) => {
            // Another iteration than the scan outputs hold: a caught bad state.
            let room = cx.b.create_block();
            cx.b.ins().brif(go, room, &[], exit, &[]);
            cx.b.seal_block(room);
            cx.b.switch_to_block(room);
            let full = cx.b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, i, m);
            cx.b.ins().brif(full, fail, &[], work, &[]);
        }
        _ => {
            cx.b.ins().brif(go, work, &[], exit, &[]);
        }
    }
    cx.b.seal_block(work);
    cx.b.switch_to_block(work);
    cx.store(i, iter_p, 0);
    let mut outs = vec![cond_next_p];
    outs.extend(next.iter().copied());
    for (p, slice) in &scans {
        outs.push(cx.index(*p, i, *slice as i64));
    }
    let mut inputs = vec![iter_p, cond_p];
    inputs.extend(state.iter().copied());
    let body_base = at(cx, fr.body_arena);
    let old = swap_frame(cx, (inputs, outs, caps, body_base));
    let mut errors = vec![];
    lower_body(cx, body, &plan, &mut errors);
    swap_frame(cx, old);
    if !errors.is_empty() {
        return Err(errors
            .iter()
            .map(|u| format!("body: {u}"))
            .collect::<Vec<_>>()
            .join("; "));
    }
    copy_bytes(cx, cond_next_p, cond_p, 1)?;
    for j in 0..n {
        copy_bytes(cx, next[j], state[j], sizes[j])?;
    }
    let i1 = cx.b.ins().iadd_imm_s(i, 1);
    cx.b.ins().jump(head, &[i1.into()]);
    cx.b.seal_block(head);
    cx.b.switch_to_block(exit);
    cx.b.seal_block(exit);
    if let (Some(m), Some(fail)) = (scan_m, fail) {
        // Fewer iterations than the scan outputs hold: a caught bad state too.
        let ok = cx.b.create_block();
        let short = cx.b.ins().icmp_imm_s(IntCC::NotEqual, i, m);
        cx.b.ins().brif(short, fail, &[], ok, &[]);
        cx.b.seal_block(fail);
        cx.b.switch_to_block(fail);
        let code = cx.b.ins().iconst(types::I32, 1);
        cx.b.ins().return_(&[code]);
        cx.b.seal_block(ok);
        cx.b.switch_to_block(ok);
    }
    for j in 0..n {
        if let Some(Some(o)) = io.outs.get(j) {
            if o.len() * o.elem() != sizes[j] {
                return Err(format!("Loop output {j} does not fit the carried value"));
            }
            let dst = cx.addr(io.g, o)?;
            copy_bytes(cx, state[j], dst, sizes[j])?;
        }
    }
    Ok(())
}
