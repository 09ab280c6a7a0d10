//! The verifier: checks the graph's invariants and collects every violation.
//!
//! Checked, for the graph and recursively for every subgraph:
//! - the graph is acyclic;
//! - every edge ends on an input port below the node's arity and starts on an existing output;
//! - every input port has at most one incoming edge (one producer per value use);
//! - graph inputs and captures are `Input` nodes, and every `Input` node is one of them;
//! - value names are unique within the graph and its subgraphs' scope chain;
//! - every graph output is a live value, and graph outputs have distinct names;
//! - the declared type of every typed op's outputs agrees with what inference computes from its
//!   inputs (`Type::compatible`), and each node has the number of outputs its op allows;
//! - a node that owns subgraphs passes as many trailing inputs as its subgraphs capture.
//!
//! Passing the verifier yields a [`GraphInfo`], which backends and the exporter take as proof.

use crate::graph::{Graph, NodeId, ValueId};
use crate::{infer, Op};
use std::collections::HashSet;

/// One violated invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// The node concerned (its name or first output name), if any.
    pub node: Option<String>,
    /// What is wrong.
    pub msg: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "node `{n}`: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

/// Every invariant the graph violates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct VerifyErrors(pub Vec<VerifyError>);

impl std::fmt::Display for VerifyErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the graph is invalid ({} problem(s)):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// Proof that a graph passed the verifier, with facts computed on the way.
#[derive(Debug, Clone)]
pub struct GraphInfo {
    /// A topological order of the nodes.
    pub order: Vec<NodeId>,
}

/// Checks every invariant of the module doc.
pub fn verify(g: &Graph) -> Result<GraphInfo, VerifyErrors> {
    let mut errs = vec![];
    let mut names = HashSet::new();
    let order = check(g, &mut errs, &mut names);
    if errs.is_empty() {
        Ok(GraphInfo { order })
    } else {
        Err(VerifyErrors(errs))
    }
}

fn outputs_allowed(op: &Op) -> Option<(usize, usize)> {
    Some(match op {
        Op::Input | Op::Const(_) => (1, 1),
        Op::Dropout(_) => (1, 2),
        Op::BatchNormalization(_) | Op::LayerNormalization(_) | Op::LSTM(_) => (1, 3),
        Op::MaxPool(_) | Op::GRU(_) => (1, 2),
        Op::TopK(_) => (2, 2),
        Op::Split(_) | Op::If(_) | Op::Loop(_) | Op::Opaque(_) => return None,
        _ => (1, 1),
    })
}

fn check(g: &Graph, errs: &mut Vec<VerifyError>, names: &mut HashSet<String>) -> Vec<NodeId> {
    let order = match g.topo_order() {
        Ok(o) => o,
        Err(e) => {
            errs.push(VerifyError {
                node: None,
                msg: e.to_string(),
            });
            return vec![];
        }
    };
    let inputs: HashSet<ValueId> = g.inputs().into_iter().chain(g.captures()).collect();
    // Captures stand for values of an enclosing graph and carry their names.
    let captures: HashSet<ValueId> = g.captures().into_iter().collect();
    for &id in &order {
        let n = g.node(id);
        let label = || Some(g.display_node_name(id));
        for v in &n.outputs {
            if captures.contains(&ValueId::new(id, 0)) {
                continue;
            }
            if !v.name.is_empty() && !names.insert(v.name.clone()) {
                errs.push(VerifyError {
                    node: label(),
                    msg: format!("value name `{}` is defined twice", v.name),
                });
            }
        }
        if matches!(n.op, Op::Input) && !inputs.contains(&ValueId::new(id, 0)) {
            errs.push(VerifyError {
                node: label(),
                msg: "Input node is neither a graph input nor a capture".into(),
            });
        }
        if let Some((lo, hi)) = outputs_allowed(&n.op) {
            if n.outputs.len() < lo || n.outputs.len() > hi {
                errs.push(VerifyError {
                    node: label(),
                    msg: format!(
                        "{} has {} outputs, expected {lo}..={hi}",
                        n.op.op_type(),
                        n.outputs.len()
                    ),
                });
            }
        }
        // Ports: count edges per input port.
        let ins = g.node_inputs(id);
        let mut seen = vec![0usize; n.num_inputs];
        for (port, v) in ins.iter().enumerate() {
            if let Some(v) = v {
                if !g.contains_value(*v) {
                    errs.push(VerifyError {
                        node: label(),
                        msg: format!("input {port} comes from a missing value"),
                    });
                }
                seen[port] += 1;
            }
        }
        let edge_count = g.users_count_into(id);
        if edge_count != seen.iter().sum::<usize>() {
            errs.push(VerifyError {
                node: label(),
                msg: "an input port has several producers or an edge ends beyond the arity".into(),
            });
        }
        let subs = n.op.subgraphs();
        for sub in &subs {
            let caps = sub.captures().len();
            if caps > n.num_inputs {
                errs.push(VerifyError {
                    node: label(),
                    msg: format!(
                        "subgraph `{}` captures {caps} values but the node has {} inputs",
                        sub.name, n.num_inputs
                    ),
                });
            }
            let mut inner = names.clone();
            check(sub, errs, &mut inner);
        }
        if !matches!(n.op, Op::Opaque(_) | Op::Input) {
            match infer::infer_node(g, id) {
                Ok(types) => {
                    for (port, t) in types.iter().enumerate() {
                        let Some(v) = n.outputs.get(port) else {
                            continue;
                        };
                        if !t.compatible(&v.ty) {
                            errs.push(VerifyError {
                                node: label(),
                                msg: format!(
                                    "output `{}` is declared {} but the op gives {}",
                                    v.name, v.ty, t
                                ),
                            });
                        }
                    }
                }
                Err(e) => errs.push(VerifyError {
                    node: label(),
                    msg: e.msg,
                }),
            }
        }
    }
    let mut out_names = HashSet::new();
    for v in g.outputs() {
        if !g.contains_value(*v) {
            errs.push(VerifyError {
                node: None,
                msg: format!("graph output {v:?} is not a live value"),
            });
        } else if !out_names.insert(g.value(*v).name.clone()) {
            errs.push(VerifyError {
                node: None,
                msg: format!("graph output `{}` is listed twice", g.value(*v).name),
            });
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Value;
    use crate::{ops, DType, Type};

    #[test]
    fn valid_graph_passes_and_type_mismatch_is_reported() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::tensor(DType::F32, &[2, 3]));
        let r = g
            .add_node(
                "r",
                Op::Relu(ops::Relu {}),
                &[Some(x)],
                vec![Value {
                    name: "y".into(),
                    ty: Type::tensor(DType::F32, &[2, 3]),
                }],
            )
            .unwrap();
        g.set_outputs(vec![ValueId::new(r, 0)]).unwrap();
        assert!(verify(&g).is_ok());
        g.set_value_type(ValueId::new(r, 0), Type::tensor(DType::F32, &[3, 2]));
        let e = verify(&g).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert!(
            e.0[0]
                .msg
                .contains("declared f32[3,2] but the op gives f32[2,3]"),
            "{}",
            e
        );
    }

    #[test]
    fn duplicate_names_are_reported() {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::tensor(DType::F32, &[2]));
        let r = g
            .add_node(
                "r",
                Op::Relu(ops::Relu {}),
                &[Some(x)],
                vec![Value {
                    name: "x".into(),
                    ty: Type::tensor(DType::F32, &[2]),
                }],
            )
            .unwrap();
        g.set_outputs(vec![ValueId::new(r, 0)]).unwrap();
        let e = verify(&g).unwrap_err();
        assert!(e.0[0].msg.contains("defined twice"));
    }
}
