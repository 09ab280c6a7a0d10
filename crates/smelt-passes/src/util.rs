//! Graph edits the passes share: replacing a value by a constant or by another value while
//! keeping the naming rule (a value name means the same numbers before and after a pass).

use smelt_ir::{Graph, GraphError, Op, Tensor, ValueId};
use std::collections::HashSet;

/// Every value name of the subgraphs of `g`'s nodes, recursively.
fn subgraph_names(g: &Graph, out: &mut HashSet<String>) {
    for id in g.node_ids() {
        for sub in g.node(id).op.subgraphs() {
            out.extend(sub.values_by_name().into_keys());
            subgraph_names(sub, out);
        }
    }
}

/// A value name unused in `g` and in its subgraphs (the IR's names are unique across a graph
/// and the subgraphs it holds): `base`, or `base_1`, `base_2`, …
pub(crate) fn fresh_name(g: &Graph, base: &str) -> String {
    let mut inner = HashSet::new();
    subgraph_names(g, &mut inner);
    let mut cand = g.fresh_name(base);
    let mut k = 1;
    while inner.contains(&cand) {
        cand = g.fresh_name(&format!("{base}_{k}"));
        k += 1;
    }
    cand
}

/// True when `v` is a graph input, a capture or a constant: a value named in its own right.
pub(crate) fn is_named_source(g: &Graph, v: ValueId) -> bool {
    matches!(g.node(v.node).op, Op::Input | Op::Const(_))
}

/// Replaces every use of `v` by a new constant holding `t`. The constant takes `v`'s name
/// (a graph output keeps its name through an Identity, as [`Graph::replace_all_uses`] does).
pub(crate) fn replace_with_const(
    g: &mut Graph,
    v: ValueId,
    t: Tensor,
) -> Result<ValueId, GraphError> {
    let name = g.value(v).name.clone();
    let base = if name.is_empty() {
        "const".to_string()
    } else {
        name.clone()
    };
    if g.is_output(v) {
        let c = g.add_const(fresh_name(g, &format!("{base}_const")), t);
        g.replace_all_uses(v, c)?;
        return Ok(c);
    }
    let tmp = fresh_name(g, &format!("{base}_folded"));
    g.rename_value(v, tmp);
    let cname = if name.is_empty() {
        fresh_name(g, &base)
    } else {
        name
    };
    let c = g.add_const(cname, t);
    g.replace_all_uses(v, c)?;
    Ok(c)
}

/// Replaces every use of `old` by `new`, a value the rewrite computed to stand for `old`:
/// `new` takes `old`'s name (unless `new` is a graph input, constant or output).
pub(crate) fn replace_taking_name(
    g: &mut Graph,
    old: ValueId,
    new: ValueId,
) -> Result<(), GraphError> {
    if old == new {
        return Ok(());
    }
    if g.is_output(old) || is_named_source(g, new) || g.is_output(new) {
        return g.replace_all_uses(old, new);
    }
    let name = g.value(old).name.clone();
    if !name.is_empty() {
        let tmp = fresh_name(g, &format!("{name}_old"));
        g.rename_value(old, tmp);
        g.rename_value(new, name);
    }
    g.replace_all_uses(old, new)
}

/// The constant behind an input port.
pub(crate) fn const_input(g: &Graph, id: smelt_ir::NodeId, port: usize) -> Option<&Tensor> {
    g.const_value(g.node_input(id, port)?)
}

/// Number of uses of a value, counting a graph output as one.
pub(crate) fn use_count(g: &Graph, v: ValueId) -> usize {
    g.users(v).len() + g.is_output(v) as usize
}
