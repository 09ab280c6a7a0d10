//! Model statistics for `smelt inspect`: inputs and outputs, op histogram, parameters.

use smelt_ir::{Graph, Model, Op, Type};
use std::collections::BTreeMap;

/// A named, typed graph input or output.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Port {
    /// The value name.
    pub name: String,
    /// Its type in the text form's notation (`f32[1,3,224,224]`).
    pub ty: String,
}

/// What `smelt inspect` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelStats {
    /// Graph name.
    pub name: String,
    /// Producer name and version.
    pub producer: String,
    /// ONNX IR version.
    pub ir_version: i64,
    /// Operator sets: domain (`ai.onnx` for the default) → version.
    pub opsets: BTreeMap<String, i64>,
    /// Graph inputs.
    pub inputs: Vec<Port>,
    /// Graph outputs.
    pub outputs: Vec<Port>,
    /// Nodes by op type (constants and inputs excluded), subgraphs included.
    pub ops: BTreeMap<String, usize>,
    /// Number of op nodes.
    pub nodes: usize,
    /// Elements in constants (parameters).
    pub parameters: u64,
    /// Bytes of constant data.
    pub parameter_bytes: u64,
    /// Ops kept verbatim (the native backend cannot compile them).
    pub opaque_ops: BTreeMap<String, usize>,
    /// Estimated floating-point operations of one run (Gemm/MatMul/Conv count 2 per
    /// multiply-accumulate; see smelt_passes::cost).
    pub flops: u64,
    /// Estimated multiply-accumulates of the matrix ops (Gemm, MatMul, Conv, ConvTranspose).
    pub macs: u64,
    /// Nodes whose cost could not be estimated (shapes not known).
    pub unknown_cost_nodes: u64,
}

fn walk(g: &Graph, s: &mut ModelStats) {
    for id in g.node_ids() {
        let n = g.node(id);
        match &n.op {
            Op::Input => {}
            Op::Const(t) => {
                s.parameters += t.len() as u64;
                s.parameter_bytes += t.byte_len() as u64;
            }
            op => {
                s.nodes += 1;
                let name = match op {
                    Op::Opaque(o) if !o.domain.is_empty() => format!("{}::{}", o.domain, o.op_type),
                    _ => op.op_type().to_string(),
                };
                if matches!(op, Op::Opaque(_)) {
                    *s.opaque_ops.entry(name.clone()).or_default() += 1;
                }
                *s.ops.entry(name).or_default() += 1;
                for sub in op.subgraphs() {
                    walk(sub, s);
                }
            }
        }
    }
}

fn port(g: &Graph, v: smelt_ir::ValueId) -> Port {
    let ty: &Type = g.value_type(v);
    Port {
        name: g.value(v).name.clone(),
        ty: ty.to_string(),
    }
}

/// Computes the statistics of a model.
pub fn model_stats(m: &Model) -> ModelStats {
    let g = &m.graph;
    let mut s = ModelStats {
        name: g.name.clone(),
        producer: format!("{} {}", m.producer_name, m.producer_version)
            .trim()
            .to_string(),
        ir_version: m.ir_version,
        opsets: m
            .opsets
            .iter()
            .map(|(d, v)| {
                (
                    if d.is_empty() {
                        "ai.onnx".to_string()
                    } else {
                        d.clone()
                    },
                    *v,
                )
            })
            .collect(),
        inputs: g.inputs().into_iter().map(|v| port(g, v)).collect(),
        outputs: g.outputs().iter().map(|v| port(g, *v)).collect(),
        ops: BTreeMap::new(),
        nodes: 0,
        parameters: 0,
        parameter_bytes: 0,
        opaque_ops: BTreeMap::new(),
        flops: 0,
        macs: 0,
        unknown_cost_nodes: 0,
    };
    walk(g, &mut s);
    let cost = smelt_passes::cost::graph_stats(g);
    s.flops = cost.flops;
    s.unknown_cost_nodes = cost.unknown_cost_nodes;
    s.macs = g
        .node_ids()
        .into_iter()
        .filter(|id| {
            matches!(
                g.node(*id).op,
                Op::Gemm(_) | Op::MatMul(_) | Op::Conv(_) | Op::ConvTranspose(_)
            )
        })
        .filter_map(|id| {
            // cost counts 2 FLOPs per multiply-accumulate plus one per output for a bias.
            let f = smelt_passes::cost::node_flops(g, id)?;
            let has_bias =
                matches!(g.node(id).op, Op::Gemm(_) | Op::Conv(_)) && g.node_input(id, 2).is_some();
            let outs: u64 = if has_bias {
                g.value_type(smelt_ir::ValueId::new(id, 0))
                    .static_dims()
                    .map(|d| d.iter().product::<usize>() as u64)
                    .unwrap_or(0)
            } else {
                0
            };
            Some(f.saturating_sub(outs) / 2)
        })
        .sum();
    s
}
