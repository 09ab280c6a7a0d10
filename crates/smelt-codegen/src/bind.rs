//! Shape binding: symbolic dims of the graph inputs get extents, and shape inference runs again
//! so that every value of the graph has a static shape; shape subgraphs (`Shape` → `Gather` →
//! `Concat` → `Reshape`, …) fold into constants on the way ([`crate::fold`]).
//!
//! The extents come from `--input-shape NAME=D,D,..` or from the shapes of the tensors handed
//! to a run. A given shape must have the declared rank and agree with every known extent. After
//! binding, [`static_values`] names the first value that is still not static, so that
//! compilation stops with an error naming it rather than guessing.
//!
//! Values can be bound too: [`freeze_inputs`] turns graph inputs into constants. Some operands
//! must be known to compile at all — a reduction's axes, a Reshape's shape, Slice's bounds,
//! Range's start/limit/delta fix the output shape, Clip's bounds and Pad's fill value are baked
//! into the code ([`value_operands`]). [`value_inputs`] names the graph inputs that reach such
//! an operand, and [`compile_time_inputs`] those of them whose data is at hand, which is what
//! `smelt run` freezes.

use crate::error::CodegenError;
use smelt_ir::{infer, Dim, Graph, Op, Tensor, Type, ValueId};

/// Binds the graph inputs named in `shapes` and re-infers every value type.
/// Inputs not named keep their declared shapes.
pub fn bind(g: &Graph, shapes: &[(String, Vec<usize>)]) -> Result<Graph, CodegenError> {
    let mut g = g.clone();
    let inputs = g.inputs();
    for (name, dims) in shapes {
        let Some(v) = inputs.iter().find(|v| g.value(**v).name == *name) else {
            let names: Vec<String> = inputs.iter().map(|v| g.value(*v).name.clone()).collect();
            return Err(CodegenError::Bind(format!(
                "the graph has no input `{name}` (inputs: {})",
                names.join(", ")
            )));
        };
        let ty = g.value_type(*v).clone();
        let Some(t) = ty.as_tensor() else {
            return Err(CodegenError::Bind(format!(
                "input `{name}` is not a tensor ({ty})"
            )));
        };
        if let Some(decl) = &t.shape {
            if decl.len() != dims.len() {
                return Err(CodegenError::Bind(format!(
                    "input `{name}` has rank {}, given shape {dims:?}",
                    decl.len()
                )));
            }
            for (i, (d, n)) in decl.iter().zip(dims).enumerate() {
                if let Dim::Known(k) = d {
                    if *k != *n as u64 {
                        return Err(CodegenError::Bind(format!(
                            "input `{name}` has extent {k} on axis {i}, given {n}"
                        )));
                    }
                }
            }
        }
        let Some(dtype) = t.dtype else {
            return Err(CodegenError::Bind(format!(
                "input `{name}` has no known element type"
            )));
        };
        g.set_value_type(*v, Type::tensor(dtype, dims));
    }
    // Forget inferred symbolic extents of computed values: inference recomputes them from the
    // bound inputs (declared symbols would otherwise survive where inference knows better).
    for id in g.node_ids() {
        let node = g.node(id);
        if matches!(node.op, smelt_ir::Op::Input | smelt_ir::Op::Opaque(_)) {
            continue;
        }
        for port in 0..node.outputs.len() {
            let v = smelt_ir::ValueId::new(id, port as u32);
            if let Type::Tensor(t) = g.value_type(v).clone() {
                if t.shape
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|d| d.known().is_none()))
                {
                    let cleared = smelt_ir::TensorType {
                        dtype: t.dtype,
                        shape: t.shape.map(|s| {
                            s.into_iter()
                                .map(|d| if d.known().is_some() { d } else { Dim::Unknown })
                                .collect()
                        }),
                    };
                    g.set_value_type(v, Type::Tensor(cleared));
                }
            }
        }
    }
    let infer = |g: &mut Graph| {
        infer::infer_graph(g).map_err(|errs| {
            CodegenError::InvalidGraph(
                errs.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    };
    infer(&mut g)?;
    // Opaque ops the backend lowers get their types (the legacy softmax its input's type,
    // CastLike its first input's shape and its second input's dtype), and shape subgraphs
    // become constants once the inputs are bound; each round may make more shapes static (a
    // loop guard bounds the rounds).
    for _ in 0..32 {
        let retyped = retype_opaque(&mut g) | shape_offset_slices(&mut g);
        let folded = crate::fold::fold_shapes(&mut g);
        if !retyped && folded == 0 {
            break;
        }
        infer(&mut g)?;
    }
    Ok(g)
}

/// Replaces the named graph inputs by constants holding the given values (the values must fit
/// the declared dtype and known extents); the inputs leave the graph's input list.
pub fn freeze_inputs(
    g: &Graph,
    values: &[(String, smelt_ir::Tensor)],
) -> Result<Graph, CodegenError> {
    let mut g = g.clone();
    for (name, t) in values {
        let inputs = g.inputs();
        let Some(v) = inputs.iter().copied().find(|v| g.value(*v).name == *name) else {
            return Err(CodegenError::Bind(format!(
                "the graph has no input `{name}`"
            )));
        };
        let ty = g.value_type(v).clone();
        if !ty.compatible(&Type::tensor(t.dtype(), t.dims())) {
            return Err(CodegenError::Bind(format!(
                "input `{name}` is {ty}, the value given is {}",
                crate::error::describe(t.dtype(), t.dims())
            )));
        }
        let cname = g.fresh_name(&format!("{name}_value"));
        let c = g.add_const(cname, t.clone());
        g.replace_all_uses(v, c)
            .map_err(|e| CodegenError::InvalidGraph(e.to_string()))?;
        let rest: Vec<_> = inputs.into_iter().filter(|x| *x != v).collect();
        g.set_inputs(rest)
            .map_err(|e| CodegenError::InvalidGraph(e.to_string()))?;
        g.remove_node(v.node);
    }
    Ok(g)
}

/// The operands of `op` (input positions) whose values the lowering must know at compile
/// time: they fix the output's shape (a Reshape's, Expand's or ConstantOfShape's shape, Tile's
/// repeats, Squeeze/Unsqueeze/reduction axes, Split's sizes, Slice's and Pad's bounds, Range's
/// start, limit and delta, TopK's k, Resize's scales and sizes, and its roi for
/// tf_crop_and_resize) or are baked into the generated code (Clip's bounds, Pad's fill value,
/// BatchNormalization's parameters, Dropout's ratio and training flag, Trilu's k, CumSum's and
/// CumProd's axis). An operand computed at run time there makes the node refused (or its
/// output shape unknown).
pub fn value_operands(op: &Op) -> &'static [usize] {
    match op {
        Op::Reshape(_)
        | Op::Expand(_)
        | Op::Tile(_)
        | Op::Squeeze(_)
        | Op::Unsqueeze(_)
        | Op::Split(_)
        | Op::TopK(_)
        | Op::ReduceMean(_)
        | Op::ReduceSum(_)
        | Op::ReduceMax(_)
        | Op::ReduceMin(_)
        | Op::ReduceProd(_)
        | Op::ReduceL2(_)
        | Op::ReduceL1(_)
        | Op::ReduceSumSquare(_)
        | Op::ReduceLogSumExp(_) => &[1],
        Op::ConstantOfShape(_) => &[0],
        Op::Slice(_) => &[1, 2, 3, 4],
        Op::Pad(_) => &[1, 2, 3],
        Op::Range(_) => &[0, 1, 2],
        Op::Clip(_) => &[1, 2],
        Op::Trilu(_) => &[1],
        Op::Resize(o) if o.coordinate_transformation_mode == "tf_crop_and_resize" => &[1, 2, 3],
        Op::Resize(_) => &[2, 3],
        Op::Dropout(_) => &[1, 2],
        Op::BatchNormalization(_) => &[1, 2, 3, 4],
        op if crate::lower::reduce::cum_attrs(op).is_some() => &[1],
        _ => &[],
    }
}

/// The graph inputs (by name, in the graph's input order) whose values reach a
/// [`value_operands`] operand of some node, directly or through nodes that binding evaluates
/// once their inputs are constants ([`crate::fold`]: Cast, Identity, Reshape, Concat, Gather,
/// Slice, integer arithmetic, …; not through `Shape`, which reads only the shape). Compiling
/// the graph takes these values as constants ([`freeze_inputs`], or
/// [`crate::jit::Options::const_inputs`]); without them the nodes they feed are refused.
/// Nodes inside subgraphs (Loop and If bodies) are not followed.
pub fn value_inputs(g: &Graph) -> Vec<String> {
    reaching_inputs(g, &g.node_ids())
}

/// The graph inputs whose values reach a [`value_operands`] operand of one of `nodes`.
pub(crate) fn reaching_inputs(g: &Graph, nodes: &[smelt_ir::NodeId]) -> Vec<String> {
    let mut seen: std::collections::HashSet<ValueId> = std::collections::HashSet::new();
    let mut stack: Vec<ValueId> = vec![];
    for id in nodes {
        let ins = g.node_inputs(*id);
        for &i in value_operands(&g.node(*id).op) {
            if let Some(Some(v)) = ins.get(i) {
                stack.push(*v);
            }
        }
    }
    while let Some(v) = stack.pop() {
        if !g.contains_value(v) || !seen.insert(v) {
            continue;
        }
        if crate::fold::follows_values(&g.node(v.node).op) {
            stack.extend(g.node_inputs(v.node).into_iter().flatten());
        }
    }
    g.inputs()
        .into_iter()
        .filter(|v| seen.contains(v))
        .map(|v| g.value(v).name.clone())
        .collect()
}

/// The [`value_inputs`] of `g` that can be frozen from the given data: `inputs` holds the
/// tensors handed to a run, in the graph's input order (the ONNX test-data layout), and an input
/// is named when its tensor is there, numeric and small (at most [`crate::fold::MAX_ELEMS`]
/// elements: axes, shapes, bounds, not activations). Freezing exactly these
/// ([`crate::jit::Options::const_inputs`]) compiles the graph for those values; the compiled
/// model then takes the other inputs.
pub fn compile_time_inputs(g: &Graph, inputs: &[Tensor]) -> Vec<String> {
    let wanted = value_inputs(g);
    g.inputs()
        .into_iter()
        .zip(inputs)
        .filter(|(v, t)| {
            wanted.contains(&g.value(*v).name)
                && t.len() <= crate::fold::MAX_ELEMS
                && t.bytes().is_some()
                && (t.dtype().is_int()
                    || t.dtype().is_float()
                    || t.dtype() == smelt_ir::DType::Bool)
        })
        .map(|(v, _)| g.value(v).name.clone())
        .collect()
}

/// `v` as `base + offset` for a constant offset, through Identity, Squeeze, Unsqueeze,
/// Reshape, integer Cast and Add/Sub of a one-element integer constant.
fn base_plus_const(g: &Graph, v: ValueId) -> (ValueId, i64) {
    let mut v = v;
    let mut off = 0i64;
    for _ in 0..16 {
        if !g.contains_value(v) {
            break;
        }
        let id = v.node;
        let ins = g.node_inputs(id);
        let arg = |i: usize| ins.get(i).copied().flatten();
        let konst = |i: usize| {
            arg(i)
                .and_then(|c| g.const_value(c))
                .filter(|t| t.len() == 1 && !t.dtype().is_float())
                .and_then(|t| t.to_i64_vec())
                .and_then(|x| x.first().copied())
        };
        let next = match &g.node(id).op {
            Op::Identity(_) | Op::Squeeze(_) | Op::Unsqueeze(_) | Op::Reshape(_) => arg(0),
            Op::Cast(c) if c.to.is_int() => arg(0),
            Op::Add(_) => match (konst(0), konst(1)) {
                (_, Some(c)) => {
                    off += c;
                    arg(0)
                }
                (Some(c), _) => {
                    off += c;
                    arg(1)
                }
                _ => None,
            },
            Op::Sub(_) => konst(1).and_then(|c| {
                off -= c;
                arg(0)
            }),
            _ => None,
        };
        match next {
            Some(n) => v = n,
            None => break,
        }
    }
    (v, off)
}

/// Gives a static shape to a Slice whose one-element starts and ends come at run time from
/// one value plus different constants (`end = start + 1` of a Loop body's iteration counter):
/// the extent along the axis is `(end offset - start offset) / step`, rounded up. The lowering
/// checks at run time that the clamped bounds give that extent (status 1 otherwise). Recurses
/// into subgraphs; true when a type changed.
fn shape_offset_slices(g: &mut Graph) -> bool {
    let mut changed = false;
    for id in g.node_ids() {
        for sub in g.node_mut(id).op.subgraphs_mut() {
            if shape_offset_slices(sub) {
                changed = true;
                let _ = infer::infer_graph(sub);
            }
        }
        if !matches!(g.node(id).op, Op::Slice(_)) {
            continue;
        }
        let out = ValueId::new(id, 0);
        if !g.contains_value(out) || g.value_type(out).static_dims().is_some() {
            continue;
        }
        let ins = g.node_inputs(id);
        let arg = |i: usize| ins.get(i).copied().flatten();
        let (Some(x), Some(st), Some(en)) = (arg(0), arg(1), arg(2)) else {
            continue;
        };
        let Some(dims) = g.value_type(x).static_dims() else {
            continue;
        };
        let one = |v: ValueId| {
            g.value_type(v)
                .static_dims()
                .is_some_and(|d| d.iter().product::<usize>() == 1)
        };
        if !one(st) || !one(en) || g.const_value(st).is_some() {
            continue;
        }
        let ints = |i: usize| arg(i).map(|v| g.const_value(v).and_then(|t| t.to_i64_vec()));
        let axis = match ints(3) {
            None => 0,
            Some(Some(a)) if a.len() == 1 => a[0],
            _ => continue,
        };
        let step = match ints(4) {
            None => 1,
            Some(Some(s)) if s.len() == 1 && s[0] != 0 => s[0],
            _ => continue,
        };
        let ((sb, so), (eb, eo)) = (base_plus_const(g, st), base_plus_const(g, en));
        if sb != eb {
            continue;
        }
        let r = dims.len() as i64;
        let a = if axis < 0 { axis + r } else { axis };
        if !(0..r).contains(&a) {
            continue;
        }
        let span = if step > 0 { eo - so } else { so - eo };
        let m = step.abs();
        let extent = ((span.max(0) + m - 1) / m).min(dims[a as usize] as i64);
        let mut out_dims = dims.clone();
        out_dims[a as usize] = extent as usize;
        let Some(dt) = g.value_type(x).dtype() else {
            continue;
        };
        g.set_value_type(out, Type::tensor(dt, &out_dims));
        changed = true;
    }
    changed
}

/// Sets the output types of the opaque ops the backend lowers (the legacy softmax, CumSum,
/// CumProd, Hardmax, LpNormalization, RMSNormalization, Selu, Celu, ThresholdedRelu and the
/// bitwise ops their input's type, IsInf its input's shape as bool, CastLike its first input's
/// shape and its second input's dtype); true when one changed.
fn retype_opaque(g: &mut Graph) -> bool {
    let mut retyped = false;
    for id in g.node_ids() {
        let op = &g.node(id).op;
        // IsInf: its input's shape, bool.
        let is_inf = matches!(
            crate::lower::elementwise::opaque_elementwise(op),
            Some(crate::lower::elementwise::OpaqueEw::IsInf(..))
        );
        let (softmax, cast_like) = (
            crate::lower::softmax_legacy(op)
                || (crate::lower::elementwise::opaque_elementwise(op).is_some() && !is_inf)
                || crate::lower::reduce::cum_attrs(op).is_some()
                || crate::lower::reduce::line_op(op).is_some()
                || crate::lower::norm::rms_attrs(op).is_some(),
            crate::lower::is_cast_like(op),
        );
        if !(softmax || cast_like || is_inf) {
            continue;
        }
        let ins = g.node_inputs(id);
        let Some(Some(x)) = ins.first() else {
            continue;
        };
        let mut ty = g.value_type(*x).clone();
        if is_inf {
            if let Type::Tensor(t) = &mut ty {
                t.dtype = Some(smelt_ir::DType::Bool);
            }
        }
        if cast_like {
            let like = ins
                .get(1)
                .copied()
                .flatten()
                .and_then(|v| g.value_type(v).dtype());
            match (&mut ty, like) {
                (Type::Tensor(t), Some(d)) => t.dtype = Some(d),
                // Not known yet: a later round may know it.
                _ => continue,
            }
        }
        let out = smelt_ir::ValueId::new(id, 0);
        if g.contains_value(out) && *g.value_type(out) != ty {
            g.set_value_type(out, ty);
            retyped = true;
        }
    }
    retyped
}

/// Checks that every value of the graph has a static tensor shape and a dtype; the error
/// names the first value (in topological order) that does not.
pub fn static_values(g: &Graph) -> Result<(), CodegenError> {
    let order = g
        .topo_order()
        .map_err(|e| CodegenError::InvalidGraph(e.to_string()))?;
    for id in order {
        let node = g.node(id);
        for v in &node.outputs {
            if v.name.is_empty() {
                // An absent optional output: nothing computes it.
                continue;
            }
            let ok = v.ty.dtype().is_some() && v.ty.static_dims().is_some();
            if !ok {
                return Err(CodegenError::UnboundShape {
                    value: v.name.clone(),
                    ty: v.ty.to_string(),
                });
            }
        }
    }
    Ok(())
}
