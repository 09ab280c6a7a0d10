//! Graph figures for the pass reports: nodes, parameters, parameter bytes and FLOPs.
//!
//! FLOPs are an estimate from the value types, counting one multiply-add as two:
//! Gemm/MatMul/Conv `2 * MACs` (plus one per output element for a bias), elementwise ops one
//! per output element (Identity and Dropout none), BatchNormalization two per element,
//! Instance/LayerNormalization five, Softmax three, pooling one per window element, reductions
//! one per input element, Q/DQ two per element, LSTM/GRU their gate matrix products; data
//! movement and shapes count zero; an If counts its costlier branch, a Loop one iteration of
//! its body. A node whose shapes are not all known counts zero and is counted in
//! [`GraphStats::unknown_cost_nodes`]. Nodes are counted in subgraphs too.

use smelt_ir::{Graph, NodeId, Op};

/// The figures of one graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GraphStats {
    /// Operation nodes, subgraphs included (graph inputs and constants are not counted).
    pub nodes: u64,
    /// Constant elements, subgraphs included.
    pub parameters: u64,
    /// Bytes of constant data, subgraphs included.
    pub parameter_bytes: u64,
    /// Estimated FLOPs of one run of the graph (an If counts its costlier branch, a Loop one
    /// iteration of its body).
    pub flops: u64,
    /// Nodes whose FLOPs could not be estimated (shapes not known).
    pub unknown_cost_nodes: u64,
}

/// Measures a graph.
pub fn graph_stats(g: &Graph) -> GraphStats {
    let mut s = GraphStats::default();
    params(g, &mut s);
    s.flops = flops(g, &mut s);
    s
}

/// FLOPs of one run of `g`; counts its nodes (subgraphs included) into `s`.
fn flops(g: &Graph, s: &mut GraphStats) -> u64 {
    let mut total = 0u64;
    for id in g.node_ids() {
        let n = g.node(id);
        if matches!(n.op, Op::Input | Op::Const(_)) {
            continue;
        }
        s.nodes += 1;
        let subs = n.op.subgraphs();
        if !subs.is_empty() {
            // If: the costlier branch; Loop: one iteration; opaque ops: their subgraphs once.
            let per: Vec<u64> = subs.iter().map(|sub| flops(sub, s)).collect();
            total += match &n.op {
                Op::If(_) => per.into_iter().max().unwrap_or(0),
                _ => per.into_iter().sum(),
            };
            continue;
        }
        match node_flops(g, id) {
            Some(f) => total += f,
            None => s.unknown_cost_nodes += 1,
        }
    }
    total
}

fn params(g: &Graph, s: &mut GraphStats) {
    for id in g.node_ids() {
        let op = &g.node(id).op;
        if let Op::Const(t) = op {
            s.parameters += t.len() as u64;
            s.parameter_bytes += t.byte_len() as u64;
        }
        for sub in op.subgraphs() {
            params(sub, s);
        }
    }
}

fn elems(g: &Graph, v: Option<smelt_ir::ValueId>) -> Option<u64> {
    let d = g.value_type(v?).static_dims()?;
    Some(d.iter().map(|x| *x as u64).product())
}

fn dims(g: &Graph, v: Option<smelt_ir::ValueId>) -> Option<Vec<u64>> {
    Some(
        g.value_type(v?)
            .static_dims()?
            .into_iter()
            .map(|x| x as u64)
            .collect(),
    )
}

/// Estimated FLOPs of one node, `None` when its shapes are not known.
pub fn node_flops(g: &Graph, id: NodeId) -> Option<u64> {
    let n = g.node(id);
    let ins = g.node_inputs(id);
    let inp = |i: usize| ins.get(i).copied().flatten();
    let out = Some(smelt_ir::ValueId::new(id, 0));
    use Op::*;
    Some(match &n.op {
        Input | Const(_) | Identity(_) | Dropout(_) => 0,
        Relu(_) | Sigmoid(_) | Tanh(_) | Erf(_) | Exp(_) | Log(_) | Sqrt(_) | Reciprocal(_)
        | Neg(_) | Abs(_) | Softplus(_) | Softsign(_) | Floor(_) | Ceil(_) | Round(_) | Sign(_)
        | Sin(_) | Cos(_) | Not(_) | IsNaN(_) | LeakyRelu(_) | Elu(_) | HardSigmoid(_)
        | HardSwish(_) | Gelu(_) | Clip(_) | Cast(_) | Add(_) | Sub(_) | Mul(_) | Div(_)
        | Pow(_) | Mod(_) | PRelu(_) | Equal(_) | Less(_) | Greater(_) | LessOrEqual(_)
        | GreaterOrEqual(_) | And(_) | Or(_) | Xor(_) | Where(_) | Trilu(_) => elems(g, out)?,
        Min(_) | Max(_) | Sum(_) | Mean(_) => {
            elems(g, out)?
                * (ins.iter().flatten().count() as u64)
                    .saturating_sub(1)
                    .max(1)
        }
        Gemm(_) => {
            let a = dims(g, inp(0))?;
            let o = elems(g, out)?;
            let k = if let Gemm(gm) = &n.op {
                if gm.trans_a {
                    *a.first()?
                } else {
                    *a.get(1)?
                }
            } else {
                0
            };
            2 * o * k + if inp(2).is_some() { o } else { 0 }
        }
        MatMul(_) => {
            let a = dims(g, inp(0))?;
            2 * elems(g, out)? * *a.last()?
        }
        Conv(c) => {
            let w = dims(g, inp(1))?;
            let o = elems(g, out)?;
            let per: u64 = w.iter().skip(1).product();
            let _ = c;
            2 * o * per + if inp(2).is_some() { o } else { 0 }
        }
        ConvTranspose(_) => {
            let w = dims(g, inp(1))?;
            let x = elems(g, inp(0))?;
            let cin = *w.first()?;
            let per: u64 = w.iter().skip(1).product();
            if cin == 0 {
                0
            } else {
                2 * x * per
            }
        }
        BatchNormalization(_) => 2 * elems(g, out)?,
        InstanceNormalization(_) | LayerNormalization(_) => 5 * elems(g, out)?,
        LRN(l) => elems(g, out)? * (l.size.max(1) as u64 + 3),
        Softmax(_) | LogSoftmax(_) => 3 * elems(g, out)?,
        MaxPool(p) => elems(g, out)? * p.kernel_shape.iter().map(|k| *k as u64).product::<u64>(),
        AveragePool(p) => {
            elems(g, out)? * p.kernel_shape.iter().map(|k| *k as u64).product::<u64>()
        }
        GlobalAveragePool(_) | GlobalMaxPool(_) => elems(g, inp(0))?,
        ReduceMean(_) | ReduceSum(_) | ReduceMax(_) | ReduceMin(_) | ReduceProd(_)
        | ReduceL2(_) | ReduceL1(_) | ReduceSumSquare(_) | ReduceLogSumExp(_) | ArgMax(_)
        | ArgMin(_) | TopK(_) => elems(g, inp(0))?,
        QuantizeLinear(_) | DequantizeLinear(_) => 2 * elems(g, out)?,
        Resize(_) => elems(g, out)?,
        LSTM(_) | GRU(_) => {
            // X [seq, batch, input], W [dirs, gates*hidden, input], R [dirs, gates*hidden, hidden]
            let x = dims(g, inp(0))?;
            let w = dims(g, inp(1))?;
            let r = dims(g, inp(2))?;
            let steps = x.first()? * x.get(1)?;
            2 * steps * (w.iter().product::<u64>() + r.iter().product::<u64>())
        }
        Flatten(_) | Reshape(_) | Squeeze(_) | Unsqueeze(_) | Transpose(_) | Concat(_)
        | Split(_) | Slice(_) | Gather(_) | GatherElements(_) | Expand(_) | Pad(_) | Tile(_)
        | Shape(_) | Size(_) | ConstantOfShape(_) | Range(_) | If(_) | Loop(_) | Opaque(_) => 0,
    })
}
