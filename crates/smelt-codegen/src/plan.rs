//! The static memory plan: where every value of the graph lives while the model runs.
//!
//! Graph inputs stay in the caller's input buffers, constants in the read-only weights object,
//! and graph outputs are computed straight into the caller's output buffers. Every other value
//! gets an offset in one scratch *arena* that the caller provides:
//!
//! - values are grouped into *storage roots*: a reshaping op (Reshape, Flatten, Squeeze,
//!   Unsqueeze, Identity, Dropout) makes its output an alias of its input (no copy), and an
//!   elementwise op whose input dies at that op and has the output's size writes in place;
//! - each root is live from the step that first writes it to the last step that reads any value
//!   sharing it (steps follow the graph's topological order);
//! - roots are placed greedily, each at the best-fitting gap among the roots already placed
//!   whose lifetimes overlap (offsets 64-byte aligned), under a few orders (largest first,
//!   earliest first, largest size × lifetime first); the smallest arena is kept.
//!
//! The plan reports the arena size, the naive size (every intermediate value in its own
//! buffer) and the lower bound no placement can beat: the peak, over steps, of the bytes of the
//! roots live at that step (each rounded up to the alignment). Its `Display` form is the text
//! `smelt inspect --plan` prints and the snapshots keep.

use smelt_ir::{Graph, NodeId, Op, ValueId};
use std::collections::HashMap;
use std::fmt;

/// Alignment of every arena offset and of the arena itself, in bytes.
pub const ALIGN: u64 = 64;

/// Where a value lives while the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Graph input buffer `i` (read-only).
    Input(usize),
    /// Captured value `k` of a subgraph (a branch of `If`): the owning node's operand.
    Capture(usize),
    /// Graph output buffer `j`.
    Output(usize),
    /// The arena, at this byte offset.
    Arena(u64),
    /// A constant: the lowering puts it in the read-only weights object if it reads its bytes.
    Const,
}

/// What one node does to memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Computes its outputs.
    Compute,
    /// Its output is its first input, reinterpreted: nothing to do at run time.
    Alias,
}

#[derive(Clone, Debug)]
struct Root {
    bytes: u64,
    first: usize,
    last: usize,
    offset: u64,
    /// The value that created the root (for the text form).
    value: ValueId,
    arena: bool,
}

/// The memory plan of a bound graph; see the module doc.
#[derive(Clone, Debug)]
pub struct MemoryPlan {
    /// The nodes in execution order.
    pub order: Vec<NodeId>,
    /// Size of the arena the caller provides, in bytes.
    pub arena_bytes: u64,
    /// Bytes that giving every intermediate value its own buffer would take.
    pub naive_bytes: u64,
    /// Peak bytes of live intermediate values: no placement can use less.
    pub lower_bound: u64,
    places: HashMap<ValueId, Place>,
    kinds: HashMap<NodeId, NodeKind>,
    /// Graph outputs not computed in place: (value, output index), copied at the end.
    pub output_copies: Vec<(ValueId, usize)>,
    scratch: HashMap<NodeId, u64>,
    text: String,
}

fn align(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

/// The size given to a value whose byte count overflows: far beyond any machine, so that
/// allocating the arena fails with an error (a wrapped or zero size would let the generated
/// code write past the arena), yet small enough that sums of many cannot overflow a u64.
pub const IMPOSSIBLE_BYTES: u64 = 1 << 56;

/// Bytes of a value with a static shape (0 when unknown: binding guarantees it is known;
/// [`IMPOSSIBLE_BYTES`] when the count overflows or exceeds it).
pub fn value_bytes(g: &Graph, v: ValueId) -> u64 {
    let ty = g.value_type(v);
    match (ty.dtype(), ty.static_dims()) {
        (Some(dt), Some(dims)) => dims
            .iter()
            .try_fold(1usize, |a, d| a.checked_mul(*d))
            .and_then(|n| dt.bytes_for(n))
            .map(|b| (b as u64).min(IMPOSSIBLE_BYTES))
            .unwrap_or(IMPOSSIBLE_BYTES),
        _ => 0,
    }
}

fn is_alias_op(op: &Op) -> bool {
    matches!(
        op,
        Op::Identity(_)
            | Op::Dropout(_)
            | Op::Reshape(_)
            | Op::Flatten(_)
            | Op::Squeeze(_)
            | Op::Unsqueeze(_)
    )
}

/// Places roots in `order`, each at the best-fitting gap among the already placed roots whose
/// lifetimes overlap; returns the arena size and every root's offset.
fn place(roots: &[Root], order: &[usize]) -> (u64, Vec<u64>) {
    let mut offsets = vec![0u64; roots.len()];
    let mut placed: Vec<usize> = vec![];
    let mut arena = 0u64;
    for &r in order {
        let (first, last, bytes) = (roots[r].first, roots[r].last, roots[r].bytes);
        let mut busy: Vec<(u64, u64)> = placed
            .iter()
            .filter(|p| roots[**p].first <= last && first <= roots[**p].last)
            .map(|p| (offsets[*p], offsets[*p].saturating_add(roots[*p].bytes)))
            .filter(|(a, b)| b > a)
            .collect();
        busy.sort();
        let mut best: Option<(u64, u64)> = None; // (gap size, offset)
        let mut cursor = 0u64;
        for (a, b) in &busy {
            if *a > cursor {
                let gap = a - cursor;
                if gap >= bytes && best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, cursor));
                }
            }
            cursor = cursor.max(*b);
        }
        let offset = best.map(|(_, o)| o).unwrap_or(cursor);
        offsets[r] = offset;
        arena = arena.max(offset.saturating_add(bytes));
        placed.push(r);
    }
    (arena, offsets)
}

impl MemoryPlan {
    /// Plans a bound graph (every value static). `scratch` gives the extra arena bytes a node's
    /// lowering needs while it runs (0 for most).
    pub fn new(g: &Graph, scratch: &dyn Fn(&Graph, NodeId) -> u64) -> Result<MemoryPlan, String> {
        let order = g.topo_order().map_err(|e| e.to_string())?;
        let step: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let end = order.len();
        // Last use of each value.
        let mut last_use: HashMap<ValueId, usize> = HashMap::new();
        for (s, id) in order.iter().enumerate() {
            for v in g.node_inputs(*id).into_iter().flatten() {
                let e = last_use.entry(v).or_insert(s);
                *e = (*e).max(s);
            }
        }
        let outputs = g.outputs().to_vec();
        for v in &outputs {
            last_use.insert(*v, end);
        }
        let inputs = g.inputs();
        let captures = g.captures();

        let mut places: HashMap<ValueId, Place> = HashMap::new();
        let mut kinds: HashMap<NodeId, NodeKind> = HashMap::new();
        let mut output_copies = vec![];
        let mut out_slot: HashMap<ValueId, usize> = HashMap::new();
        for (j, v) in outputs.iter().enumerate() {
            let producer = &g.node(v.node).op;
            let computed = !matches!(producer, Op::Input | Op::Const(_));
            if computed && !out_slot.contains_key(v) {
                out_slot.insert(*v, j);
            } else {
                output_copies.push((*v, j));
            }
        }

        // Storage roots.
        let mut roots: Vec<Root> = vec![];
        let mut root_of: HashMap<ValueId, usize> = HashMap::new();
        let mut naive = 0u64;
        for id in &order {
            let node = g.node(*id);
            let s = step[id];
            let ins = g.node_inputs(*id);
            match &node.op {
                Op::Input => {
                    let v = ValueId::new(*id, 0);
                    let place = match inputs.iter().position(|x| *x == v) {
                        Some(i) => Place::Input(i),
                        None => Place::Capture(captures.iter().position(|x| *x == v).unwrap_or(0)),
                    };
                    places.insert(v, place);
                    kinds.insert(*id, NodeKind::Compute);
                    continue;
                }
                Op::Const(_) => {
                    places.insert(ValueId::new(*id, 0), Place::Const);
                    kinds.insert(*id, NodeKind::Compute);
                    continue;
                }
                _ => {}
            }
            let out0 = ValueId::new(*id, 0);
            let alias_src = ins.first().copied().flatten();
            if is_alias_op(&node.op) && !out_slot.contains_key(&out0) {
                if let Some(src) = alias_src {
                    // An alias of a constant would have no constant behind it: copy instead.
                    let of_const = places.get(&src) == Some(&Place::Const);
                    if value_bytes(g, src) == value_bytes(g, out0) && !of_const {
                        kinds.insert(*id, NodeKind::Alias);
                        if let Some(p) = places.get(&src).copied() {
                            places.insert(out0, p);
                        }
                        if let Some(r) = root_of.get(&src).copied() {
                            root_of.insert(out0, r);
                        }
                        // Other outputs (Dropout's mask) still need storage.
                        for port in 1..node.outputs.len() {
                            let v = ValueId::new(*id, port as u32);
                            if node.outputs[port].name.is_empty() {
                                continue;
                            }
                            let b = value_bytes(g, v);
                            naive = naive.saturating_add(align(b));
                            root_of.insert(v, roots.len());
                            roots.push(Root {
                                bytes: align(b),
                                first: s,
                                last: s,
                                offset: 0,
                                value: v,
                                arena: true,
                            });
                        }
                        continue;
                    }
                }
            }
            kinds.insert(*id, NodeKind::Compute);
            for (port, val) in node.outputs.iter().enumerate() {
                let v = ValueId::new(*id, port as u32);
                if val.name.is_empty() {
                    continue;
                }
                if let Some(j) = out_slot.get(&v) {
                    places.insert(v, Place::Output(*j));
                    continue;
                }
                let b = value_bytes(g, v);
                naive = naive.saturating_add(align(b));
                // In place: an elementwise op over an input that dies here.
                let mut merged = None;
                if port == 0 && node.op.is_elementwise() {
                    let out_ty = g.value_type(v);
                    for x in ins.iter().flatten() {
                        let Some(r) = root_of.get(x).copied() else {
                            continue;
                        };
                        let root = &roots[r];
                        let same_shape = g.value_type(*x).static_dims() == out_ty.static_dims();
                        let dies_here = root.last <= s
                            && last_use.get(x).copied().unwrap_or(0) <= s
                            && root_of
                                .iter()
                                .filter(|(_, rr)| **rr == r)
                                .all(|(w, _)| last_use.get(w).copied().unwrap_or(0) <= s);
                        let others_ok = ins.iter().flatten().all(|y| {
                            y == x
                                || root_of.get(y) != Some(&r)
                                || g.value_type(*y).static_dims() == out_ty.static_dims()
                        });
                        let same_elem = g.value_type(*x).dtype().map(|d| d.bits())
                            == out_ty.dtype().map(|d| d.bits());
                        if root.arena
                            && same_shape
                            && same_elem
                            && dies_here
                            && others_ok
                            && align(b) == root.bytes
                        {
                            merged = Some(r);
                            break;
                        }
                    }
                }
                match merged {
                    Some(r) => {
                        root_of.insert(v, r);
                    }
                    None => {
                        root_of.insert(v, roots.len());
                        roots.push(Root {
                            bytes: align(b),
                            first: s,
                            last: s,
                            offset: 0,
                            value: v,
                            arena: true,
                        });
                    }
                }
            }
            // Record uses: a root lives until its last reader.
            for v in ins.iter().flatten() {
                if let Some(r) = root_of.get(v) {
                    let lu = last_use.get(v).copied().unwrap_or(s);
                    roots[*r].last = roots[*r].last.max(lu);
                }
            }
        }
        // Lifetimes: extend every root to the last use of every value that shares it.
        for (v, r) in &root_of {
            let lu = last_use.get(v).copied().unwrap_or(roots[*r].first);
            roots[*r].last = roots[*r].last.max(lu);
        }
        // Per-node scratch, live only while the node runs.
        let mut scratch_roots: HashMap<NodeId, usize> = HashMap::new();
        for id in &order {
            let b = scratch(g, *id);
            if b > 0 && kinds.get(id) == Some(&NodeKind::Compute) {
                naive = naive.saturating_add(align(b));
                scratch_roots.insert(*id, roots.len());
                roots.push(Root {
                    bytes: align(b),
                    first: step[id],
                    last: step[id],
                    offset: 0,
                    value: ValueId::new(*id, 0),
                    arena: true,
                });
            }
        }

        // Greedy placement under a few orders (largest first; earliest first; largest
        // size x lifetime first), each at the best-fitting gap; the smallest arena wins.
        let n_roots = roots.len();
        let mut orders: Vec<Vec<usize>> = vec![];
        let mut o: Vec<usize> = (0..n_roots).collect();
        o.sort_by(|a, b| {
            roots[*b]
                .bytes
                .cmp(&roots[*a].bytes)
                .then(roots[*a].first.cmp(&roots[*b].first))
        });
        orders.push(o);
        let mut o: Vec<usize> = (0..n_roots).collect();
        o.sort_by(|a, b| {
            roots[*a]
                .first
                .cmp(&roots[*b].first)
                .then(roots[*b].bytes.cmp(&roots[*a].bytes))
        });
        orders.push(o);
        let mut o: Vec<usize> = (0..n_roots).collect();
        let area = |r: &Root| r.bytes as u128 * (r.last - r.first + 1) as u128;
        o.sort_by(|a, b| area(&roots[*b]).cmp(&area(&roots[*a])).then(a.cmp(b)));
        orders.push(o);
        let mut best_fit: Option<(u64, Vec<u64>)> = None;
        for order in &orders {
            let (arena, offsets) = place(&roots, order);
            if best_fit.as_ref().is_none_or(|(a, _)| arena < *a) {
                best_fit = Some((arena, offsets));
            }
        }
        let (arena, offsets) = best_fit.unwrap_or((0, vec![]));
        for (r, off) in roots.iter_mut().zip(offsets) {
            r.offset = off;
        }
        let mut lower_bound = 0u64;
        for t in 0..=end {
            let live: u64 = roots
                .iter()
                .filter(|r| r.first <= t && t <= r.last)
                .map(|r| r.bytes)
                .fold(0u64, |a, b| a.saturating_add(b));
            lower_bound = lower_bound.max(live);
        }
        for (v, r) in &root_of {
            if !places.contains_key(v) {
                places.insert(*v, Place::Arena(roots[*r].offset));
            }
        }
        // Aliases of arena values were recorded before their root had an offset.
        for id in &order {
            if kinds.get(id) == Some(&NodeKind::Alias) {
                let out0 = ValueId::new(*id, 0);
                if let Some(r) = root_of.get(&out0) {
                    places.insert(out0, Place::Arena(roots[*r].offset));
                }
            }
        }
        let scratch: HashMap<NodeId, u64> = scratch_roots
            .iter()
            .map(|(n, r)| (*n, roots[*r].offset))
            .collect();

        // Text form.
        let mut text = format!(
            "arena {arena} bytes (naive {naive}, lower bound {lower_bound}, align {ALIGN})\n"
        );
        for id in &order {
            let node = g.node(*id);
            if matches!(node.op, Op::Input | Op::Const(_)) {
                continue;
            }
            let kind = kinds.get(id).copied().unwrap_or(NodeKind::Compute);
            for (port, val) in node.outputs.iter().enumerate() {
                if val.name.is_empty() {
                    continue;
                }
                let v = ValueId::new(*id, port as u32);
                let place = match places.get(&v) {
                    Some(Place::Input(i)) => format!("input {i}"),
                    Some(Place::Capture(k)) => format!("capture {k}"),
                    Some(Place::Output(j)) => format!("output {j}"),
                    Some(Place::Const) => "const".to_string(),
                    Some(Place::Arena(o)) => format!("arena @{o}"),
                    None => "-".to_string(),
                };
                let how = match (kind, root_of.get(&v)) {
                    (NodeKind::Alias, _) if port == 0 => " alias".to_string(),
                    (_, Some(r)) if roots[*r].value != v => {
                        format!(" in-place of %{}", g.value(roots[*r].value).name)
                    }
                    (_, Some(r)) => format!(" live {}..{}", roots[*r].first, roots[*r].last),
                    _ => String::new(),
                };
                text.push_str(&format!(
                    "  %{} = {} : {} {} B {}{}\n",
                    val.name,
                    node.op.op_type(),
                    val.ty,
                    value_bytes(g, v),
                    place,
                    how
                ));
            }
            if let Some(o) = scratch.get(id) {
                text.push_str(&format!(
                    "  scratch of {}: {} B arena @{o}\n",
                    g.display_node_name(*id),
                    scratch_roots.get(id).map(|r| roots[*r].bytes).unwrap_or(0)
                ));
            }
        }
        for (v, j) in &output_copies {
            text.push_str(&format!("  copy %{} -> output {j}\n", g.value(*v).name));
        }
        Ok(MemoryPlan {
            order,
            arena_bytes: arena,
            naive_bytes: naive,
            lower_bound,
            places,
            kinds,
            output_copies,
            scratch,
            text,
        })
    }

    /// Where a value lives.
    pub fn place(&self, v: ValueId) -> Option<Place> {
        self.places.get(&v).copied()
    }

    /// What a node does to memory.
    pub fn kind(&self, id: NodeId) -> NodeKind {
        self.kinds.get(&id).copied().unwrap_or(NodeKind::Compute)
    }

    /// The arena offset of a node's scratch space, if it asked for one.
    pub fn scratch(&self, id: NodeId) -> Option<u64> {
        self.scratch.get(&id).copied()
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
