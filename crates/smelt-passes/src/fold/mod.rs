//! `fold`: constant folding and the exact clean-ups around it.
//!
//! ```text
//! before                                              after
//!   %s = Shape(%x) : i64[2]          (x: f32[1,64])     %r.shape = const i64[2] [1, 64]
//!   %r.shape = Concat(%s_0, %m1)                        %y = Reshape(%x, %r.shape)
//!   %y = Reshape(%x, %r.shape)
//!   %wq = QuantizeLinear(%w, %s, %z) (w: const f32)     %wq = const i8[..]
//!   %wd = DequantizeLinear(%wq, %s, %z)                 %wd = DequantizeLinear(%wq, %s, %z)
//! ```
//!
//! Rewrites, repeated to a fixpoint (at most [`MAX_ROUNDS`] rounds):
//! - evaluate every node whose inputs are all constants with the reference evaluator
//!   ([`crate::eval`]); `QuantizeLinear` on a float constant thus becomes an integer constant.
//!   `DequantizeLinear` on constants is left as compact storage unless `dequantize=true`;
//! - `Shape` and `Size` of a value whose shape is statically known become constants;
//! - an `If` whose condition is constant is replaced by the branch taken;
//! - `BatchNormalization` after a Conv/Gemm/MatMul with constant weights folds into them
//!   (`fold/batchnorm.rs`);
//! - `Identity`, inference-mode `Dropout` and no-ops (Reshape/Flatten/Squeeze/Unsqueeze/Expand
//!   to the same shape, Cast to the same dtype, Transpose by the identity) are removed;
//! - identical constants and identical nodes (same op, attributes and inputs) are merged
//!   (`fold/dedup.rs`), and nodes no output depends on are removed;
//! - the same, inside the subgraphs of If, Loop and opaque nodes.
//!
//! The size guard: a node whose folded value would take more than `max_bytes` (default 1 GiB)
//! and more than the constants it reads is left alone, and the report names it.
//!
//! Guarantees: exact (the reference evaluator computes what the op does; floats are rounded
//! once to the output dtype); the graph never gets more nodes or FLOPs; graph outputs keep
//! their names; a value name keeps meaning the same numbers.

mod batchnorm;
mod dedup;
mod inline_if;

use crate::eval;
use crate::pass::{Changed, Pass, PassCtx, PassError};
use crate::registry::{OptionInfo, OptionKind, PassInfo};
use crate::spec::Options;
use crate::util::{const_input, replace_with_const, use_count};
use smelt_ir::{Graph, GraphError, NodeId, Op, Tensor, ValueId};
use std::collections::BTreeSet;

/// Loop guard: the most rounds of rewrites one run does.
pub const MAX_ROUNDS: usize = 32;

/// The default size guard: 1 GiB per folded tensor.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The `fold` pass's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Leave a node unfolded when its value would be larger than this and than its inputs.
    pub max_bytes: u64,
    /// Evaluate DequantizeLinear on constants too (float weights instead of int storage).
    pub dequantize: bool,
}

impl Default for Fold {
    fn default() -> Fold {
        Fold {
            max_bytes: DEFAULT_MAX_BYTES,
            dequantize: false,
        }
    }
}

/// The registry entry.
pub const INFO: PassInfo = PassInfo {
    name: "fold",
    summary: "constant folding, shape folding, BN folding, dead code, deduplication",
    options: &[
        OptionInfo {
            name: "dequantize",
            kind: OptionKind::Bool,
            default: "false",
            help: "also evaluate DequantizeLinear on constants into float constants",
        },
        OptionInfo {
            name: "max_bytes",
            kind: OptionKind::Bytes,
            default: "1GiB",
            help: "leave nodes whose folded value is larger than this (and than their inputs)",
        },
    ],
    build,
};

fn build(o: &Options) -> Result<Box<dyn Pass>, PassError> {
    let max = o.int("max_bytes", DEFAULT_MAX_BYTES as i64);
    if max < 0 {
        return Err(PassError::BadOption {
            pass: "fold",
            option: "max_bytes",
            msg: "must not be negative".into(),
        });
    }
    Ok(Box::new(Fold {
        max_bytes: max as u64,
        dequantize: o.bool("dequantize", false),
    }))
}

impl Pass for Fold {
    fn name(&self) -> &'static str {
        "fold"
    }

    fn run(&self, g: &mut Graph, cx: &mut PassCtx) -> Result<Changed, PassError> {
        let mut st = Stats::default();
        let guard = self.fold_graph(g, &mut st)?;
        if st.total() > 0 {
            cx.note(st.summary());
        }
        if guard {
            cx.note(format!("stopped after {MAX_ROUNDS} rounds (loop guard)"));
        }
        for l in &st.left {
            cx.note(l.clone());
        }
        Ok(Changed::count(st.total()))
    }
}

impl Fold {
    /// Folds `g` and its subgraphs to a fixpoint; true when the loop guard stopped it.
    fn fold_graph(&self, g: &mut Graph, st: &mut Stats) -> Result<bool, PassError> {
        let ge = |source: GraphError| PassError::Graph {
            pass: "fold",
            source,
        };
        let mut rounds = 0;
        let mut guard = false;
        loop {
            rounds += 1;
            // Refresh types: folding a shape makes later shapes known.
            let _ = smelt_ir::infer::infer_graph(g);
            let before = st.total();
            st.identities += remove_identities(g).map_err(ge)?;
            st.ifs += inline_if::inline_constant_ifs(g).map_err(ge)?;
            st.shapes += fold_shapes(g).map_err(ge)?;
            st.consts += fold_constants(g, self, &mut st.left).map_err(ge)?;
            st.batchnorms += batchnorm::fold_batchnorms(g).map_err(ge)?;
            st.dead += g.remove_dead_nodes();
            st.merged_consts += dedup::merge_constants(g).map_err(ge)?;
            st.cse += dedup::merge_nodes(g).map_err(ge)?;
            st.dead += g.remove_dead_nodes();
            guard |= self.fold_subgraphs(g, st)?;
            if st.total() == before {
                break;
            }
            if rounds >= MAX_ROUNDS {
                guard = true;
                break;
            }
        }
        let _ = smelt_ir::infer::infer_graph(g);
        Ok(guard)
    }

    /// Folds inside the subgraphs of If, Loop and opaque nodes. New value names are kept
    /// unique across the enclosing graph too (the IR's scoping rule).
    fn fold_subgraphs(&self, g: &mut Graph, st: &mut Stats) -> Result<bool, PassError> {
        let mut guard = false;
        for id in g.node_ids() {
            if g.node(id).op.subgraphs().is_empty() {
                continue;
            }
            let outer: BTreeSet<String> = g.values_by_name().into_keys().collect();
            let mut op = g.node(id).op.clone();
            let mut changed = false;
            for sub in op.subgraphs_mut() {
                let before_names: BTreeSet<String> = sub.values_by_name().into_keys().collect();
                let before = st.total();
                guard |= self.fold_graph(sub, st)?;
                if st.total() == before {
                    continue;
                }
                changed = true;
                for (name, v) in sub.values_by_name() {
                    if outer.contains(&name) && !before_names.contains(&name) {
                        let mut k = 1;
                        let fresh = loop {
                            let c = format!("{name}_{k}");
                            if !outer.contains(&c) && !sub.has_value_name(&c) {
                                break c;
                            }
                            k += 1;
                        };
                        sub.rename_value(v, fresh);
                    }
                }
            }
            if changed {
                g.node_mut(id).op = op;
            }
        }
        Ok(guard)
    }
}

#[derive(Default)]
struct Stats {
    consts: usize,
    shapes: usize,
    ifs: usize,
    batchnorms: usize,
    identities: usize,
    merged_consts: usize,
    cse: usize,
    dead: usize,
    left: BTreeSet<String>,
}

impl Stats {
    fn total(&self) -> usize {
        self.consts
            + self.shapes
            + self.ifs
            + self.batchnorms
            + self.identities
            + self.merged_consts
            + self.cse
            + self.dead
    }
    fn summary(&self) -> String {
        let parts = [
            ("nodes evaluated", self.consts),
            ("shapes folded", self.shapes),
            ("If inlined", self.ifs),
            ("BatchNormalization folded", self.batchnorms),
            ("Identity/Dropout/no-ops removed", self.identities),
            ("constants merged", self.merged_consts),
            ("nodes merged", self.cse),
            ("dead nodes removed", self.dead),
        ];
        parts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Removes Identity, inference-mode Dropout (whose mask nobody reads) and ops that give back
/// their input unchanged (Reshape/Flatten/Squeeze/Unsqueeze/Expand to the same shape, Cast to
/// the same dtype, Transpose by the identity permutation).
fn remove_identities(g: &mut Graph) -> Result<usize, GraphError> {
    let mut n = 0;
    for id in g.node_ids() {
        if !g.contains_node(id) {
            continue;
        }
        let through = match &g.node(id).op {
            Op::Identity(_) => true,
            // Ops that give back their input unchanged.
            Op::Reshape(_)
            | Op::Flatten(_)
            | Op::Squeeze(_)
            | Op::Unsqueeze(_)
            | Op::Expand(_)
            | Op::Cast(_)
            | Op::Transpose(_) => is_noop(g, id),
            Op::Dropout(_) => {
                let training = match g.node_input(id, 2) {
                    None => false,
                    Some(v) => match g.const_value(v).and_then(|t| t.to_i64_vec()) {
                        Some(b) => b.iter().any(|x| *x != 0),
                        None => true,
                    },
                };
                let mask_used =
                    g.node(id).outputs.len() > 1 && use_count(g, ValueId::new(id, 1)) > 0;
                !training && !mask_used
            }
            _ => false,
        };
        if !through {
            continue;
        }
        let Some(x) = g.node_input(id, 0) else {
            continue;
        };
        let y = ValueId::new(id, 0);
        // An output fed straight by an input, a constant or another output needs the Identity.
        if g.is_output(y) && (crate::util::is_named_source(g, x) || g.is_output(x)) {
            if matches!(g.node(id).op, Op::Identity(_)) {
                continue;
            }
            // A Dropout or no-op there becomes the Identity that keeps the output name.
            let op = Op::Identity(smelt_ir::ops::Identity {});
            g.node_mut(id).op = op;
            g.set_node_inputs(id, &[Some(x)])?;
            g.node_mut(id).outputs.truncate(1);
            n += 1;
            continue;
        }
        g.replace_all_uses(y, x)?;
        g.remove_node(id);
        n += 1;
    }
    Ok(n)
}

/// True when a shape op, Cast or Transpose gives back its input unchanged: same dtype and
/// same static shape (and, for Transpose, the identity permutation).
fn is_noop(g: &Graph, id: NodeId) -> bool {
    let Some(x) = g.node_input(id, 0) else {
        return false;
    };
    if g.node(id).outputs.len() != 1 {
        return false;
    }
    let (tx, ty) = (g.value_type(x), g.value_type(ValueId::new(id, 0)));
    let same = match (tx.static_dims(), ty.static_dims(), tx.dtype(), ty.dtype()) {
        (Some(a), Some(b), Some(p), Some(q)) => a == b && p == q,
        _ => false,
    };
    match &g.node(id).op {
        Op::Transpose(t) => {
            let rank = tx.static_dims().map(|d| d.len()).unwrap_or(0);
            let identity = match &t.perm {
                Some(p) => p.iter().enumerate().all(|(i, v)| *v == i as i64),
                None => rank <= 1,
            };
            same && identity
        }
        _ => same,
    }
}

/// Shape and Size of values with a static shape become constants.
fn fold_shapes(g: &mut Graph) -> Result<usize, GraphError> {
    let mut n = 0;
    for id in g.node_ids() {
        if !g.contains_node(id) {
            continue;
        }
        let Some(x) = g.node_input(id, 0) else {
            continue;
        };
        if g.const_value(x).is_some() {
            continue; // plain constant folding does it
        }
        let t = match &g.node(id).op {
            Op::Shape(s) => {
                let Some(shape) = g.value_type(x).shape() else {
                    continue;
                };
                let r = shape.len() as i64;
                let cl = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
                let (a, b) = (cl(s.start) as usize, cl(s.end.unwrap_or(r)) as usize);
                let dims: Option<Vec<i64>> = shape
                    .get(a..b.max(a))
                    .unwrap_or(&[])
                    .iter()
                    .map(|d| d.known().map(|v| v as i64))
                    .collect();
                let Some(dims) = dims else {
                    continue;
                };
                Tensor::from_vec(vec![dims.len()], &dims).ok()
            }
            Op::Size(_) => match g.value_type(x).static_dims() {
                Some(d) => Some(Tensor::scalar(d.iter().product::<usize>() as i64)),
                None => continue,
            },
            _ => continue,
        };
        if let Some(t) = t {
            replace_with_const(g, ValueId::new(id, 0), t)?;
            n += 1;
        }
    }
    // Gather and Slice of a Shape whose picked dims are known, when others are symbolic
    // (`x.size(1)` of a `[batch, 64]` input).
    for id in g.node_ids() {
        if !g.contains_node(id) || !matches!(g.node(id).op, Op::Gather(_) | Op::Slice(_)) {
            continue;
        }
        if let Some(t) = pick_known_dims(g, id) {
            replace_with_const(g, ValueId::new(id, 0), t)?;
            n += 1;
        }
    }
    Ok(n)
}

/// The value of `Gather(Shape(x), …)` / `Slice(Shape(x), …)` when the dims it picks are known.
fn pick_known_dims(g: &Graph, id: NodeId) -> Option<Tensor> {
    let data = g.node_input(id, 0)?;
    let Op::Shape(s) = &g.node(data.node).op else {
        return None;
    };
    let x = g.node_input(data.node, 0)?;
    let shape = g.value_type(x).shape()?;
    let r = shape.len() as i64;
    let cl = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let (a, b) = (cl(s.start) as usize, cl(s.end.unwrap_or(r)) as usize);
    let part: Vec<Option<i64>> = shape
        .get(a..b.max(a))
        .unwrap_or(&[])
        .iter()
        .map(|d| d.known().map(|v| v as i64))
        .collect();
    // Evaluate the op on the positions 0..n, then look the picked positions up.
    let pos: Vec<i64> = (0..part.len() as i64).collect();
    let pos = Tensor::from_vec(vec![pos.len()], &pos).ok()?;
    let ins = g.node_inputs(id);
    let mut args: Vec<Option<&Tensor>> = vec![Some(&pos)];
    for v in ins.iter().skip(1) {
        match v {
            Some(v) => args.push(Some(g.const_value(*v)?)),
            None => args.push(None),
        }
    }
    let picked = eval::eval_op(&g.node(id).op, &args, 1).ok()?.pop()?;
    let vals: Option<Vec<i64>> = picked
        .to_i64_vec()?
        .iter()
        .map(|p| part.get(usize::try_from(*p).ok()?).copied().flatten())
        .collect();
    Tensor::from_vec(picked.dims().to_vec(), &vals?).ok()
}

/// Bytes a value of this type takes, when its shape is static.
fn type_bytes(ty: &smelt_ir::Type) -> Option<u64> {
    let dt = ty.dtype()?;
    let d = ty.static_dims()?;
    let n = smelt_ir::tensor::element_count(&d)?;
    dt.bytes_for(n).map(|b| b as u64)
}

/// Evaluates the nodes whose inputs are all constants.
fn fold_constants(
    g: &mut Graph,
    cfg: &Fold,
    left: &mut BTreeSet<String>,
) -> Result<usize, GraphError> {
    let mut n = 0;
    let order = g.topo_order()?;
    for id in order {
        if !g.contains_node(id) {
            continue;
        }
        let op = &g.node(id).op;
        match op {
            Op::Input | Op::Const(_) | Op::Identity(_) | Op::Dropout(_) => continue,
            Op::DequantizeLinear(_) if !cfg.dequantize => continue,
            _ => {}
        }
        if !eval::can_eval(op) {
            continue;
        }
        let inputs = g.node_inputs(id);
        if inputs.iter().flatten().next().is_none() {
            continue;
        }
        if !inputs.iter().flatten().all(|v| g.const_value(*v).is_some()) {
            continue;
        }
        let live_outs: Vec<u32> = (0..g.node(id).outputs.len() as u32)
            .filter(|p| use_count(g, ValueId::new(id, *p)) > 0)
            .collect();
        if live_outs.is_empty() {
            continue;
        }
        // The size guard, before evaluating when the output shapes are known.
        let in_bytes: u64 = {
            let mut seen = BTreeSet::new();
            inputs
                .iter()
                .flatten()
                .filter(|v| seen.insert(**v))
                .filter_map(|v| g.const_value(*v))
                .map(|t| t.byte_len() as u64)
                .sum()
        };
        let est: Option<u64> = live_outs
            .iter()
            .map(|p| type_bytes(g.value_type(ValueId::new(id, *p))))
            .sum();
        if let Some(b) = est {
            if b > cfg.max_bytes && b > in_bytes {
                left.insert(guard_note(g, id, b, cfg.max_bytes));
                continue;
            }
        }
        let args: Vec<Option<&Tensor>> = inputs
            .iter()
            .map(|v| v.and_then(|v| g.const_value(v)))
            .collect();
        let n_out = g.node(id).outputs.len();
        let outs = match eval::eval_op(&g.node(id).op, &args, n_out) {
            Ok(o) => o,
            Err(_) => continue,
        };
        let out_bytes: u64 = live_outs
            .iter()
            .filter_map(|p| outs.get(*p as usize))
            .map(|t| t.byte_len() as u64)
            .sum();
        if out_bytes > cfg.max_bytes && out_bytes > in_bytes {
            left.insert(guard_note(g, id, out_bytes, cfg.max_bytes));
            continue;
        }
        // The value must fit the declared type; anything else is left alone.
        let fits = live_outs.iter().all(|p| match outs.get(*p as usize) {
            Some(t) => smelt_ir::Type::tensor(t.dtype(), t.dims())
                .compatible(g.value_type(ValueId::new(id, *p))),
            None => false,
        });
        if !fits {
            continue;
        }
        for p in live_outs {
            let t = outs[p as usize].clone();
            replace_with_const(g, ValueId::new(id, p), t)?;
        }
        n += 1;
    }
    Ok(n)
}

fn guard_note(g: &Graph, id: NodeId, bytes: u64, max: u64) -> String {
    format!(
        "left `{}` ({}) unfolded: its value would take {bytes} bytes, over max_bytes={max}",
        g.display_node_name(id),
        g.node(id).op.op_type()
    )
}

/// Runs `fold` on a graph with default options (for callers outside a pipeline).
pub fn fold(g: &mut Graph) -> Result<Changed, PassError> {
    Fold::default().run(g, &mut PassCtx::new())
}

/// Pulls the constant behind port `port` of `id`, if any (re-exported for the submodules).
pub(crate) fn cin(g: &Graph, id: NodeId, port: usize) -> Option<Tensor> {
    const_input(g, id, port).cloned()
}

#[cfg(test)]
mod tests;
