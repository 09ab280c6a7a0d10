//! Structural merge: members that are chains of the same layers, fused into one wider network.
//!
//! A member is a *chain* when, from its one input to its one output, every node takes the
//! previous value on input 0 and only constants otherwise, and is a Gemm (`transA=0`), a Conv,
//! a BatchNormalization, an activation or pooling op without parameters, or a Flatten at axis 1.
//! Members whose chains have the same ops, attributes and constant shapes form a group.
//!
//! Between layers the group's values are in one of three states: one value all members share
//! (the shared prefix), one *wide* value whose axis 1 holds the members' values side by side
//! (member-major, so Flatten at axis 1 keeps the layout), or one value per member (*parts*).

use super::{constant, failed, ge, node, Contribution};
use crate::pass::PassError;
use smelt_ir::{DType, Graph, NodeId, Op, Tensor, Type, Value, ValueId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dense,
    Conv,
    BatchNorm,
    /// No parameters, per element or per channel (activations, pooling, Flatten at axis 1).
    Plain,
}

fn kind(g: &Graph, id: NodeId) -> Option<Kind> {
    let n = g.node(id);
    let ins = g.node_inputs(id);
    let c = |p: usize| ins.get(p).copied().flatten().and_then(|v| g.const_value(v));
    let f32_rank = |p: usize, r: &[usize]| {
        c(p).is_some_and(|t| t.dtype() == DType::F32 && r.contains(&t.dims().len()))
    };
    let k = match &n.op {
        Op::Gemm(gm) if !gm.trans_a => {
            if !f32_rank(1, &[2]) || ins.len() > 3 {
                return None;
            }
            let w = c(1)?.dims();
            let out = if gm.trans_b { w[0] } else { w[1] };
            if let Some(b) = ins.get(2).copied().flatten() {
                let t = g.const_value(b)?;
                if t.dtype() != DType::F32 || (t.dims() != [out] && t.dims() != [1, out]) {
                    return None;
                }
            }
            Kind::Dense
        }
        Op::Conv(_) => {
            if !f32_rank(1, &[3, 4, 5]) || ins.len() > 3 {
                return None;
            }
            if ins.get(2).copied().flatten().is_some() && !f32_rank(2, &[1]) {
                return None;
            }
            Kind::Conv
        }
        Op::BatchNormalization(b) if b.training_mode == 0 => {
            if ins.len() != 5 || !(1..5).all(|p| f32_rank(p, &[1])) {
                return None;
            }
            Kind::BatchNorm
        }
        Op::Flatten(f) if f.axis == 1 => Kind::Plain,
        Op::Relu(_)
        | Op::Sigmoid(_)
        | Op::Tanh(_)
        | Op::LeakyRelu(_)
        | Op::Elu(_)
        | Op::HardSigmoid(_)
        | Op::HardSwish(_)
        | Op::Gelu(_)
        | Op::Softplus(_)
        | Op::Softsign(_)
        | Op::Identity(_)
        | Op::Dropout(_)
        | Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalAveragePool(_)
        | Op::GlobalMaxPool(_) => Kind::Plain,
        _ => return None,
    };
    if k == Kind::Plain && ins.len() != 1 {
        return None;
    }
    Some(k)
}

/// The chain of `g` (see the module doc), or `None`.
fn chain(g: &Graph) -> Option<Vec<NodeId>> {
    let ins = g.inputs();
    if ins.len() != 1 || g.outputs().len() != 1 {
        return None;
    }
    let mut v = ins[0];
    let mut out = vec![];
    while !g.is_output(v) {
        let users = g.users(v);
        let [(id, 0)] = users.as_slice() else {
            return None;
        };
        let id = *id;
        kind(g, id)?;
        let inputs = g.node_inputs(id);
        if inputs
            .iter()
            .skip(1)
            .flatten()
            .any(|x| g.const_value(*x).is_none())
        {
            return None;
        }
        for p in 1..g.node(id).outputs.len() {
            let o = ValueId::new(id, p as u32);
            if !g.users(o).is_empty() || g.is_output(o) {
                return None;
            }
        }
        // The layout needs the width (axis 1) of every value; other dims may be symbolic.
        width(g, ValueId::new(id, 0))?;
        out.push(id);
        v = ValueId::new(id, 0);
        if out.len() > 10_000 {
            return None;
        }
    }
    if !g.users(v).is_empty() || out.is_empty() {
        return None;
    }
    Some(out)
}

/// The extent of axis 1 of `v`, when known.
fn width(g: &Graph, v: ValueId) -> Option<usize> {
    g.value_type(v).shape()?.get(1)?.known().map(|d| d as usize)
}

type Sig = Vec<(Op, Vec<Option<(DType, Vec<usize>)>>)>;

fn signature(g: &Graph, chain: &[NodeId]) -> Sig {
    chain
        .iter()
        .map(|id| {
            let consts = g
                .node_inputs(*id)
                .iter()
                .skip(1)
                .map(|v| {
                    v.and_then(|v| g.const_value(v))
                        .map(|t| (t.dtype(), t.dims().to_vec()))
                })
                .collect();
            (g.node(*id).op.clone(), consts)
        })
        .collect()
}

/// Groups of two or more members with the same chain structure, in member order.
pub(super) fn groups(graphs: &[Graph]) -> Vec<Vec<usize>> {
    let sigs: Vec<Option<Sig>> = graphs
        .iter()
        .map(|g| chain(g).map(|c| signature(g, &c)))
        .collect();
    let mut groups: Vec<Vec<usize>> = vec![];
    let mut taken = vec![false; graphs.len()];
    for k in 0..graphs.len() {
        let Some(s) = &sigs[k] else { continue };
        if taken[k] {
            continue;
        }
        let grp: Vec<usize> = (k..graphs.len())
            .filter(|j| !taken[*j] && sigs[*j].as_ref() == Some(s))
            .collect();
        if grp.len() >= 2 {
            for j in &grp {
                taken[*j] = true;
            }
            groups.push(grp);
        }
    }
    groups
}

enum State {
    Shared(ValueId),
    Wide(ValueId),
    Parts(Vec<ValueId>),
    Folded(ValueId),
}

fn consts(g: &Graph, id: NodeId) -> Vec<Option<Tensor>> {
    g.node_inputs(id)
        .iter()
        .skip(1)
        .map(|v| v.and_then(|v| g.const_value(v)).cloned())
        .collect()
}

/// Parameter `port` of every member's layer. The members were matched layer by layer, so each
/// has it; a member that does not is an error, never a panic.
fn param(cs: &[Vec<Option<Tensor>>], port: usize) -> Result<Vec<&Tensor>, PassError> {
    cs.iter()
        .map(|c| {
            c.get(port).and_then(|t| t.as_ref()).ok_or_else(|| {
                failed(format!(
                    "a member has no constant parameter {port} in a fused layer"
                ))
            })
        })
        .collect()
}

fn f32s(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap_or_default()
}

fn tensor(dims: Vec<usize>, v: &[f32]) -> Result<Tensor, PassError> {
    Tensor::from_vec(dims, v).map_err(|e| failed(e.to_string()))
}

/// Stacks tensors along axis 0 (their other dims equal).
fn stack0(ts: &[&Tensor]) -> Result<Tensor, PassError> {
    let mut dims = ts[0].dims().to_vec();
    dims[0] = ts.iter().map(|t| t.dims()[0]).sum();
    let v: Vec<f32> = ts.iter().flat_map(|t| f32s(t)).collect();
    tensor(dims, &v)
}

/// Joins tensors along their last axis (a bias `[out]` or `[1, out]`).
fn join_last(ts: &[&Tensor]) -> Result<Tensor, PassError> {
    let mut dims = ts[0].dims().to_vec();
    let r = dims.len() - 1;
    dims[r] = ts.iter().map(|t| t.dims()[r]).sum();
    let v: Vec<f32> = ts.iter().flat_map(|t| f32s(t)).collect();
    tensor(dims, &v)
}

/// Joins 2-D tensors along axis 1, each scaled by its factor.
fn join1(ts: &[&Tensor], scale: &[f32]) -> Result<Tensor, PassError> {
    let rows = ts[0].dims()[0];
    let cols: Vec<usize> = ts.iter().map(|t| t.dims()[1]).collect();
    let vs: Vec<Vec<f32>> = ts.iter().map(|t| f32s(t)).collect();
    let mut out = Vec::with_capacity(rows * cols.iter().sum::<usize>());
    for r in 0..rows {
        for (k, v) in vs.iter().enumerate() {
            out.extend(
                v[r * cols[k]..(r + 1) * cols[k]]
                    .iter()
                    .map(|x| x * scale[k]),
            );
        }
    }
    tensor(vec![rows, cols.iter().sum()], &out)
}

/// The block-diagonal matrix of 2-D tensors.
fn block_diag(ts: &[&Tensor]) -> Result<Tensor, PassError> {
    let rows: usize = ts.iter().map(|t| t.dims()[0]).sum();
    let cols: usize = ts.iter().map(|t| t.dims()[1]).sum();
    let mut out = vec![0f32; rows * cols];
    let (mut r0, mut c0) = (0, 0);
    for t in ts {
        let (r, c) = (t.dims()[0], t.dims()[1]);
        let v = f32s(t);
        for i in 0..r {
            out[(r0 + i) * cols + c0..(r0 + i) * cols + c0 + c]
                .copy_from_slice(&v[i * c..(i + 1) * c]);
        }
        r0 += r;
        c0 += c;
    }
    tensor(vec![rows, cols], &out)
}

/// Adds member graph `m`'s node `id` to `g` over `h`, with `op` and the constants `cs` (input
/// ports 1..), named `prefix` + the member's names.
fn emit(
    g: &mut Graph,
    m: &Graph,
    id: NodeId,
    h: ValueId,
    op: Op,
    cs: Vec<Option<Tensor>>,
    prefix: &str,
) -> Result<ValueId, PassError> {
    let n = m.node(id);
    let mut ins = vec![Some(h)];
    for (p, t) in cs.into_iter().enumerate() {
        ins.push(match t {
            Some(t) => {
                let src = m.node_input(id, p + 1).map(|v| m.value(v).name.clone());
                let base = format!("{prefix}{}", src.unwrap_or_else(|| "const".into()));
                Some(constant(g, &base, t))
            }
            None => None,
        });
    }
    let outputs = n
        .outputs
        .iter()
        .map(|v| Value {
            name: if v.name.is_empty() {
                String::new()
            } else {
                g.fresh_name(&format!("{prefix}{}", v.name))
            },
            ty: Type::Unknown,
        })
        .collect();
    let name = g.fresh_node_name(&format!("{prefix}{}", n.name));
    let new = g.add_node(name, op, &ins, outputs).map_err(ge)?;
    Ok(ValueId::new(new, 0))
}

/// Splits a wide value along axis 1 into the members' widths.
fn split(
    g: &mut Graph,
    h: ValueId,
    widths: &[usize],
    prefix: &str,
) -> Result<Vec<ValueId>, PassError> {
    let w: Vec<i64> = widths.iter().map(|x| *x as i64).collect();
    let sizes = constant(
        g,
        &format!("{prefix}split_sizes"),
        Tensor::from_vec(vec![w.len()], &w).map_err(|e| failed(e.to_string()))?,
    );
    let outs: Vec<Value> = (0..widths.len())
        .map(|k| Value {
            name: g.fresh_name(&format!("{prefix}part{k}")),
            ty: Type::Unknown,
        })
        .collect();
    let name = g.fresh_node_name(&format!("{prefix}split"));
    let id = g
        .add_node(
            name,
            Op::Split(smelt_ir::ops::Split {
                axis: 1,
                num_outputs: None,
            }),
            &[Some(h), Some(sizes)],
            outs,
        )
        .map_err(ge)?;
    Ok((0..widths.len())
        .map(|k| ValueId::new(id, k as u32))
        .collect())
}

fn concat(g: &mut Graph, parts: &[ValueId], prefix: &str) -> Result<ValueId, PassError> {
    node(
        g,
        &format!("{prefix}concat"),
        Op::Concat(smelt_ir::ops::Concat { axis: 1 }),
        parts,
    )
}

fn fmt_n(x: u64) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Emits a fused group into `g`; returns what it gives for the (single) output.
#[allow(clippy::too_many_arguments)]
pub(super) fn emit_group(
    g: &mut Graph,
    graphs: &[Graph],
    grp: &[usize],
    gi: usize,
    weights: &[f64],
    linear: bool,
    node_cost: u64,
    lines: &mut Vec<String>,
) -> Result<Vec<Contribution>, PassError> {
    let ms: Vec<&Graph> = grp.iter().map(|k| &graphs[*k]).collect();
    let chains: Vec<Vec<NodeId>> = ms
        .iter()
        .map(|m| chain(m).ok_or_else(|| failed("not a chain")))
        .collect::<Result<_, _>>()?;
    let m = grp.len();
    let in_name = ms[0].value(ms[0].inputs()[0]).name.clone();
    let x = g
        .inputs()
        .into_iter()
        .find(|v| g.value(*v).name == in_name)
        .ok_or_else(|| failed(format!("no merged input `{in_name}`")))?;
    let p = format!("g{gi}/");
    let who = format!("g{gi} (members {grp:?})");
    let mut state = State::Shared(x);
    let layers = chains[0].len();
    for i in 0..layers {
        let ids: Vec<NodeId> = chains.iter().map(|c| c[i]).collect();
        let m0 = ms[0];
        let n0 = m0.node(ids[0]);
        let kd = kind(m0, ids[0]).ok_or_else(|| failed("not a layer"))?;
        let cs: Vec<Vec<Option<Tensor>>> = ms
            .iter()
            .zip(&ids)
            .map(|(mg, id)| consts(mg, *id))
            .collect();
        let label = format!(
            "{who}: layer {} `{}` ({})",
            i + 1,
            m0.display_node_name(ids[0]),
            n0.op.op_type()
        );
        let in_widths: Vec<usize> = ms
            .iter()
            .zip(&ids)
            .map(|(mg, id)| {
                mg.node_input(*id, 0)
                    .and_then(|v| width(mg, v))
                    .unwrap_or(0)
            })
            .collect();
        let last = i + 1 == layers;
        let same = cs.iter().all(|c| {
            c.iter().zip(&cs[0]).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => a.bytes() == b.bytes(),
                (None, None) => true,
                _ => false,
            })
        });
        let per_member = |g: &mut Graph, hs: &[ValueId]| -> Result<Vec<ValueId>, PassError> {
            let mut out = vec![];
            for (j, h) in hs.iter().enumerate() {
                let mg = ms[j];
                out.push(emit(
                    g,
                    mg,
                    ids[j],
                    *h,
                    mg.node(ids[j]).op.clone(),
                    cs[j].clone(),
                    &format!("m{}/", grp[j]),
                )?);
            }
            Ok(out)
        };
        let gemm = match &n0.op {
            Op::Gemm(x) => Some(x.clone()),
            _ => None,
        };
        state = match state {
            State::Shared(h) if same => {
                lines.push(format!("{label}: the same in every member, computed once"));
                State::Shared(emit(g, m0, ids[0], h, n0.op.clone(), cs[0].clone(), &p)?)
            }
            State::Shared(h) if kd == Kind::Dense && last && linear => {
                // Σ wᵢ(Wᵢh + bᵢ) = (Σ wᵢWᵢ)h + Σ wᵢbᵢ over the one shared input.
                let scale: Vec<f32> = grp.iter().map(|k| weights[*k] as f32).collect();
                let mut nc = vec![];
                for port in 0..cs[0].len() {
                    nc.push(match &cs[0][port] {
                        Some(t0) => {
                            let vs: Vec<Vec<f32>> =
                                param(&cs, port)?.into_iter().map(f32s).collect();
                            let sum: Vec<f32> = (0..vs[0].len())
                                .map(|j| vs.iter().zip(&scale).map(|(v, s)| v[j] * s).sum())
                                .collect();
                            Some(tensor(t0.dims().to_vec(), &sum)?)
                        }
                        None => None,
                    });
                }
                lines.push(format!(
                    "{label}: the weighted sum folds into this layer (Σ wᵢWᵢ, Σ wᵢbᵢ over the shared input): no combine node"
                ));
                State::Folded(emit(g, m0, ids[0], h, n0.op.clone(), nc, &p)?)
            }
            State::Shared(h) => {
                let conv_g1 = matches!(&n0.op, Op::Conv(c) if c.group == 1);
                if kd == Kind::Dense || conv_g1 {
                    // One wide layer over the shared input: weights along the output dim.
                    let ws: Vec<&Tensor> = param(&cs, 0)?;
                    let w = match &gemm {
                        Some(gm) if !gm.trans_b => join1(&ws, &vec![1.0; m])?,
                        _ => stack0(&ws)?,
                    };
                    let b = match cs[0].get(1) {
                        Some(Some(_)) => {
                            let bs: Vec<&Tensor> = param(&cs, 1)?;
                            Some(join_last(&bs)?)
                        }
                        _ => None,
                    };
                    let mut nc = vec![Some(w)];
                    if cs[0].len() > 1 {
                        nc.push(b);
                    }
                    lines.push(format!(
                        "{label}: weights concatenated along the output dim (one wide layer over the shared input)"
                    ));
                    State::Wide(emit(g, m0, ids[0], h, n0.op.clone(), nc, &p)?)
                } else {
                    lines.push(format!("{label}: separate per member"));
                    State::Parts(per_member(g, &vec![h; m])?)
                }
            }
            State::Folded(_) => return Err(failed("layer after the folded last layer")),
            State::Wide(_) | State::Parts(_) if kd == Kind::Dense => {
                let gm = gemm
                    .clone()
                    .ok_or_else(|| failed("a dense layer that is not a Gemm"))?;
                let from_wide = matches!(state, State::Wide(_));
                let ws: Vec<&Tensor> = param(&cs, 0)?;
                let bias: Vec<Option<&Tensor>> = cs
                    .iter()
                    .map(|c| c.get(1).and_then(|b| b.as_ref()))
                    .collect();
                let wide_in = |g: &mut Graph, st: &State| -> Result<ValueId, PassError> {
                    match st {
                        State::Wide(h) => Ok(*h),
                        State::Parts(hs) => concat(g, hs, &p),
                        _ => Err(failed("bad state")),
                    }
                };
                if last && linear {
                    // Σ wᵢ(Wᵢhᵢ + bᵢ) = [w₁W₁ … wₙWₙ]·[h₁;…;hₙ] + Σ wᵢbᵢ
                    let scale: Vec<f32> = grp.iter().map(|k| weights[*k] as f32).collect();
                    let w = if gm.trans_b {
                        join1(&ws, &scale)?
                    } else {
                        let scaled: Vec<Tensor> = ws
                            .iter()
                            .zip(&scale)
                            .map(|(t, s)| {
                                let v: Vec<f32> = f32s(t).iter().map(|x| x * s).collect();
                                tensor(t.dims().to_vec(), &v)
                            })
                            .collect::<Result<_, _>>()?;
                        stack0(&scaled.iter().collect::<Vec<_>>())?
                    };
                    let b = if bias.iter().all(|b| b.is_some())
                        && !bias.is_empty()
                        && bias[0].is_some()
                    {
                        let bs: Vec<Vec<f32>> = bias.iter().flatten().map(|b| f32s(b)).collect();
                        let sum: Vec<f32> = (0..bs[0].len())
                            .map(|j| bs.iter().zip(&scale).map(|(b, s)| b[j] * s).sum())
                            .collect();
                        Some(tensor(
                            bias.iter()
                                .flatten()
                                .next()
                                .map(|b| b.dims().to_vec())
                                .unwrap_or_default(),
                            &sum,
                        )?)
                    } else {
                        None
                    };
                    let h = wide_in(g, &state)?;
                    let mut nc = vec![Some(w)];
                    if cs[0].len() > 1 {
                        nc.push(b);
                    }
                    lines.push(format!(
                        "{label}: the weighted sum folds into this layer ([w₁W₁ … wₙWₙ], Σ wᵢbᵢ): no combine node"
                    ));
                    State::Folded(emit(g, m0, ids[0], h, n0.op.clone(), nc, &p)?)
                } else {
                    let (o, k) = if gm.trans_b {
                        (ws[0].dims()[0] as u64, ws[0].dims()[1] as u64)
                    } else {
                        (ws[0].dims()[1] as u64, ws[0].dims()[0] as u64)
                    };
                    let mm = m as u64;
                    let b1 = if bias[0].is_some() { o } else { 0 };
                    let f_sep = mm * (2 * o * k + b1);
                    let f_bd = 2 * (mm * o) * (mm * k) + mm * b1;
                    let n_sep = mm + from_wide as u64;
                    let n_bd = 1 + (!from_wide) as u64;
                    let bd = f_bd + node_cost * n_bd < f_sep + node_cost * n_sep;
                    lines.push(format!(
                        "{label}: block-diagonal {} FLOPs in {n_bd} node(s) vs separate {} FLOPs in {n_sep} nodes (node cost {}): {}",
                        fmt_n(f_bd),
                        fmt_n(f_sep),
                        fmt_n(node_cost),
                        if bd { "block-diagonal" } else { "separate" }
                    ));
                    if bd {
                        // transB=1: [out, in] blocks; transB=0: [in, out] blocks.
                        let w = block_diag(&ws)?;
                        let mut nc = vec![Some(w)];
                        if cs[0].len() > 1 {
                            nc.push(match bias[0] {
                                Some(_) => Some(join_last(
                                    &bias.iter().flatten().copied().collect::<Vec<_>>(),
                                )?),
                                None => None,
                            });
                        }
                        let h = wide_in(g, &state)?;
                        State::Wide(emit(g, m0, ids[0], h, n0.op.clone(), nc, &p)?)
                    } else {
                        let hs = match &state {
                            State::Wide(h) => split(g, *h, &in_widths, &p)?,
                            State::Parts(hs) => hs.clone(),
                            _ => return Err(failed("bad state")),
                        };
                        State::Parts(per_member(g, &hs)?)
                    }
                }
            }
            State::Wide(h) => match kd {
                Kind::Conv => {
                    let Op::Conv(mut c) = n0.op.clone() else {
                        return Err(failed("not a conv"));
                    };
                    let ws: Vec<&Tensor> = param(&cs, 0)?;
                    let mut nc = vec![Some(stack0(&ws)?)];
                    if let Some(Some(_)) = cs[0].get(1) {
                        let bs: Vec<&Tensor> = param(&cs, 1)?;
                        nc.push(Some(join_last(&bs)?));
                    }
                    lines.push(format!(
                        "{label}: grouped, group {} = {m} × {} (the same FLOPs as separate convs, one node)",
                        c.group * m as i64,
                        c.group
                    ));
                    c.group *= m as i64;
                    State::Wide(emit(g, m0, ids[0], h, Op::Conv(c), nc, &p)?)
                }
                Kind::BatchNorm => {
                    let mut nc = vec![];
                    for port in 0..4 {
                        let ts: Vec<&Tensor> = param(&cs, port)?;
                        nc.push(Some(join_last(&ts)?));
                    }
                    lines.push(format!("{label}: parameters concatenated per channel"));
                    State::Wide(emit(g, m0, ids[0], h, n0.op.clone(), nc, &p)?)
                }
                _ => State::Wide(emit(g, m0, ids[0], h, n0.op.clone(), vec![], &p)?),
            },
            State::Parts(hs) => State::Parts(per_member(g, &hs)?),
        };
    }
    Ok(match state {
        State::Folded(v) => vec![Contribution::Weighted(v)],
        State::Shared(v) if linear => {
            // Identical members: Σ wᵢ y = (Σ wᵢ) y.
            let w: f64 = grp.iter().map(|k| weights[*k]).sum();
            lines.push(format!("{who}: identical members, computed once"));
            if w == 1.0 {
                vec![Contribution::Weighted(v)]
            } else {
                vec![Contribution::Scaled(v, w)]
            }
        }
        State::Shared(v) => grp.iter().map(|k| Contribution::Member(*k, v)).collect(),
        State::Wide(v) => {
            let widths: Vec<usize> = ms
                .iter()
                .map(|mg| width(mg, mg.outputs()[0]).unwrap_or(0))
                .collect();
            let parts = split(g, v, &widths, &p)?;
            lines.push(format!(
                "{who}: outputs split from the wide value for the combine"
            ));
            grp.iter()
                .zip(parts)
                .map(|(k, v)| Contribution::Member(*k, v))
                .collect()
        }
        State::Parts(vs) => grp
            .iter()
            .zip(vs)
            .map(|(k, v)| Contribution::Member(*k, v))
            .collect(),
    })
}
