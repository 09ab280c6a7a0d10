//! Deduplication: identical constants (content hash, then equality) and identical nodes
//! (common subexpressions: same op and attributes, same inputs). Nodes with subgraphs, opaque
//! nodes (which may be random or stateful) and Dropout are never merged. The first node in
//! index order stays; the others' users move to it.

use smelt_ir::{Graph, GraphError, NodeId, Op, ValueId};
use std::collections::HashMap;

/// Merges equal constants; returns how many were merged away.
pub(super) fn merge_constants(g: &mut Graph) -> Result<usize, GraphError> {
    let mut by_hash: HashMap<u64, Vec<NodeId>> = HashMap::new();
    let mut n = 0;
    for id in g.node_ids() {
        let Op::Const(t) = &g.node(id).op else {
            continue;
        };
        let v = ValueId::new(id, 0);
        if g.is_output(v) {
            continue;
        }
        let h = t.content_hash();
        let same = by_hash.get(&h).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|k| matches!(&g.node(*k).op, Op::Const(u) if u == t))
        });
        match same {
            Some(k) => {
                g.replace_all_uses(v, ValueId::new(k, 0))?;
                g.remove_node(id);
                n += 1;
            }
            None => by_hash.entry(h).or_default().push(id),
        }
    }
    Ok(n)
}

fn mergeable(op: &Op) -> bool {
    !matches!(
        op,
        Op::Input | Op::Const(_) | Op::Opaque(_) | Op::Dropout(_)
    ) && op.subgraphs().is_empty()
}

/// Merges identical nodes; returns how many were merged away.
pub(super) fn merge_nodes(g: &mut Graph) -> Result<usize, GraphError> {
    let mut seen: HashMap<(String, Vec<Option<ValueId>>), NodeId> = HashMap::new();
    let mut n = 0;
    for id in g.topo_order()? {
        if !g.contains_node(id) || !mergeable(&g.node(id).op) {
            continue;
        }
        let key = (format!("{:?}", g.node(id).op), g.node_inputs(id));
        match seen.get(&key).copied() {
            Some(k)
                if g.node(k).outputs.len() == g.node(id).outputs.len()
                    && g.node(k)
                        .outputs
                        .iter()
                        .zip(&g.node(id).outputs)
                        .all(|(a, b)| a.ty == b.ty) =>
            {
                for p in 0..g.node(id).outputs.len() as u32 {
                    g.replace_all_uses(ValueId::new(id, p), ValueId::new(k, p))?;
                }
                if !g
                    .node(id)
                    .outputs
                    .iter()
                    .enumerate()
                    .any(|(p, _)| g.is_output(ValueId::new(id, p as u32)))
                {
                    g.remove_node(id);
                }
                n += 1;
            }
            Some(_) => {}
            None => {
                seen.insert(key, id);
            }
        }
    }
    Ok(n)
}
