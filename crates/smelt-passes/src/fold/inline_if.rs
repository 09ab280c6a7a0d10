//! An `If` whose condition is a constant is replaced by the nodes of the branch taken: the
//! branch's captures become the values the If node passes in, and the If's outputs are
//! replaced by the branch's outputs (which take the If outputs' names).

use crate::util::replace_taking_name;
use smelt_ir::{Graph, GraphError, NodeId, Op, Value, ValueId};
use std::collections::{HashMap, HashSet};

/// Inlines every If with a constant condition; returns how many.
pub(super) fn inline_constant_ifs(g: &mut Graph) -> Result<usize, GraphError> {
    let mut n = 0;
    for id in g.node_ids() {
        if g.contains_node(id) && try_inline(g, id)? {
            n += 1;
        }
    }
    Ok(n)
}

fn try_inline(g: &mut Graph, id: NodeId) -> Result<bool, GraphError> {
    let Op::If(o) = &g.node(id).op else {
        return Ok(false);
    };
    let Some(cond) = g
        .node_input(id, 0)
        .and_then(|v| g.const_value(v))
        .and_then(|t| t.to_i64_vec())
    else {
        return Ok(false);
    };
    if cond.len() != 1 {
        return Ok(false);
    }
    let branch = if cond[0] != 0 {
        (*o.then_branch).clone()
    } else {
        (*o.else_branch).clone()
    };
    let ins = g.node_inputs(id);
    let caps = branch.captures();
    if ins.len() < caps.len() + 1 || branch.outputs().len() != g.node(id).outputs.len() {
        return Ok(false);
    }
    let first = ins.len() - caps.len();
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    for (i, c) in caps.iter().enumerate() {
        match ins[first + i] {
            Some(v) => {
                map.insert(*c, v);
            }
            None => return Ok(false),
        }
    }
    let order = branch.topo_order()?;
    let cap_nodes: HashSet<NodeId> = caps.iter().map(|c| c.node).collect();
    if order
        .iter()
        .any(|b| matches!(branch.node(*b).op, Op::Input) && !cap_nodes.contains(b))
    {
        return Ok(false);
    }
    let outs = branch.outputs().to_vec();
    let distinct: HashSet<ValueId> = outs.iter().copied().collect();
    if distinct.len() != outs.len() {
        return Ok(false);
    }
    // The If's branches leave the graph: their names are free for the copies.
    g.node_mut(id).op = Op::Identity(smelt_ir::ops::Identity {});
    for b in order {
        let node = branch.node(b);
        match &node.op {
            Op::Input => {}
            Op::Const(t) => {
                let name = crate::util::fresh_name(g, &node.outputs[0].name);
                let c = g.add_const(name, t.clone());
                map.insert(ValueId::new(b, 0), c);
            }
            op => {
                let inputs: Vec<Option<ValueId>> = branch
                    .node_inputs(b)
                    .iter()
                    .map(|v| v.and_then(|v| map.get(&v).copied()))
                    .collect();
                let outputs: Vec<Value> = node
                    .outputs
                    .iter()
                    .map(|v| Value {
                        name: if v.name.is_empty() {
                            String::new()
                        } else {
                            crate::util::fresh_name(g, &v.name)
                        },
                        ty: v.ty.clone(),
                    })
                    .collect();
                let nname = if node.name.is_empty() {
                    String::new()
                } else {
                    g.fresh_node_name(&node.name)
                };
                let nid = g.add_node(nname, op.clone(), &inputs, outputs)?;
                for p in 0..node.outputs.len() as u32 {
                    map.insert(ValueId::new(b, p), ValueId::new(nid, p));
                }
            }
        }
    }
    for (k, bo) in outs.iter().enumerate() {
        let Some(nv) = map.get(bo).copied() else {
            continue;
        };
        replace_taking_name(g, ValueId::new(id, k as u32), nv)?;
    }
    g.remove_node(id);
    Ok(true)
}
