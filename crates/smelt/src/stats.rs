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
    };
    walk(g, &mut s);
    s
}
