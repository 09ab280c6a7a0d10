//! The graph: nodes are operations, edges carry one value from an output port to an input port.
//!
//! petgraph stays private to this module: the rest of smelt sees [`NodeId`] and [`ValueId`]
//! handles, which stay valid while other nodes are added and removed (the graph is a
//! `StableDiGraph`).

use crate::{Op, Type};
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::{BTreeSet, HashMap, HashSet};

/// A handle to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(u32);

impl NodeId {
    fn ix(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
    fn of(ix: NodeIndex) -> NodeId {
        NodeId(ix.index() as u32)
    }
    /// The index of this node (stable while the node lives; for deterministic ordering).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A value: output `port` of `node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId {
    /// The producing node.
    pub node: NodeId,
    /// The output port of that node.
    pub port: u32,
}

impl ValueId {
    /// Output `port` of `node`.
    pub fn new(node: NodeId, port: u32) -> ValueId {
        ValueId { node, port }
    }
}

/// A named, typed output of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The value's name (the ONNX tensor name). Empty for an unused optional output.
    pub name: String,
    /// Its type.
    pub ty: Type,
}

/// One node: an operation with its input arity and its outputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's name (the ONNX node name; may be empty).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Number of input ports; a port with no incoming edge is an absent optional input.
    pub num_inputs: usize,
    /// The outputs, by port.
    pub outputs: Vec<Value>,
    /// Free-form documentation carried from the source model.
    pub doc_string: String,
    /// Key/value metadata carried from the source model.
    pub metadata: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edge {
    src_port: u32,
    dst_port: u32,
}

/// Errors from graph edits that would break an invariant.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// The handle does not name a live node or port.
    #[error("no such value {0:?}")]
    NoSuchValue(ValueId),
    /// The handle does not name a live node.
    #[error("no such node {0:?}")]
    NoSuchNode(NodeId),
    /// A port index is out of range.
    #[error("node `{node}` has no input port {port}")]
    NoSuchPort { node: String, port: usize },
    /// The graph has a cycle through this node.
    #[error("the graph has a cycle through node `{0}`")]
    Cycle(String),
}

/// A dataflow graph: a model's main graph, or a subgraph of If/Loop/an opaque op.
///
/// A subgraph may use values of the graphs around it: each such value is a *capture*, an
/// [`Op::Input`] node listed in [`Graph::captures`]. The node that owns the subgraph takes the
/// captured values as its last inputs, in the same order, so that every use of a value is an edge
/// in the graph that defines it (dead-code elimination and scheduling see it). All subgraphs of
/// one node share that node's capture list.
#[derive(Clone, Debug)]
pub struct Graph {
    /// The graph's name.
    pub name: String,
    g: StableDiGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    captures: Vec<NodeId>,
    outputs: Vec<ValueId>,
    names: HashSet<String>,
    /// Documentation carried from the source model.
    pub doc_string: String,
    /// Key/value metadata carried from the source model.
    pub metadata: Vec<(String, String)>,
}

impl PartialEq for Graph {
    fn eq(&self, other: &Graph) -> bool {
        // Structural equality up to node indices: the canonical text says it.
        crate::text::to_text(self) == crate::text::to_text(other)
    }
}

impl Graph {
    /// An empty graph.
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            g: StableDiGraph::default(),
            inputs: vec![],
            captures: vec![],
            outputs: vec![],
            names: HashSet::new(),
            doc_string: String::new(),
            metadata: vec![],
        }
    }

    fn note_names(&mut self, outputs: &[Value]) {
        for v in outputs {
            if !v.name.is_empty() {
                self.names.insert(v.name.clone());
            }
        }
    }

    /// Adds a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        let id = self.add_raw(
            Op::Input,
            String::new(),
            0,
            vec![Value {
                name: name.into(),
                ty,
            }],
        );
        self.inputs.push(id);
        ValueId::new(id, 0)
    }

    /// Adds a captured outer value (subgraphs only); see [`Graph`].
    pub fn add_capture(&mut self, name: impl Into<String>, ty: Type) -> ValueId {
        let id = self.add_raw(
            Op::Input,
            String::new(),
            0,
            vec![Value {
                name: name.into(),
                ty,
            }],
        );
        self.captures.push(id);
        ValueId::new(id, 0)
    }

    /// Adds a constant.
    pub fn add_const(&mut self, name: impl Into<String>, t: crate::Tensor) -> ValueId {
        let ty = Type::tensor(t.dtype(), t.dims());
        let id = self.add_raw(
            Op::Const(t),
            String::new(),
            0,
            vec![Value {
                name: name.into(),
                ty,
            }],
        );
        ValueId::new(id, 0)
    }

    fn add_raw(&mut self, op: Op, name: String, num_inputs: usize, outputs: Vec<Value>) -> NodeId {
        self.note_names(&outputs);
        NodeId::of(self.g.add_node(Node {
            name,
            op,
            num_inputs,
            outputs,
            doc_string: String::new(),
            metadata: vec![],
        }))
    }

    /// Adds an operation node whose inputs are `inputs` (`None`: an absent optional input) and
    /// whose outputs have the given names and types.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[Option<ValueId>],
        outputs: Vec<Value>,
    ) -> Result<NodeId, GraphError> {
        for v in inputs.iter().flatten() {
            self.check_value(*v)?;
        }
        let id = self.add_raw(op, name.into(), inputs.len(), outputs);
        for (port, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node.ix(),
                    id.ix(),
                    Edge {
                        src_port: v.port,
                        dst_port: port as u32,
                    },
                );
            }
        }
        Ok(id)
    }

    fn check_value(&self, v: ValueId) -> Result<(), GraphError> {
        match self.g.node_weight(v.node.ix()) {
            Some(n) if (v.port as usize) < n.outputs.len() => Ok(()),
            _ => Err(GraphError::NoSuchValue(v)),
        }
    }

    /// True when `v` names a live output port.
    pub fn contains_value(&self, v: ValueId) -> bool {
        self.check_value(v).is_ok()
    }

    /// True when `id` names a live node.
    pub fn contains_node(&self, id: NodeId) -> bool {
        self.g.contains_node(id.ix())
    }

    /// The graph inputs, in order (values of [`Op::Input`] nodes).
    pub fn inputs(&self) -> Vec<ValueId> {
        self.inputs.iter().map(|n| ValueId::new(*n, 0)).collect()
    }

    /// The captured outer values (subgraphs only), in order.
    pub fn captures(&self) -> Vec<ValueId> {
        self.captures.iter().map(|n| ValueId::new(*n, 0)).collect()
    }

    /// The graph outputs, in order.
    pub fn outputs(&self) -> &[ValueId] {
        &self.outputs
    }

    /// Sets the graph outputs.
    pub fn set_outputs(&mut self, outputs: Vec<ValueId>) -> Result<(), GraphError> {
        for v in &outputs {
            self.check_value(*v)?;
        }
        self.outputs = outputs;
        Ok(())
    }

    /// Reorders the captures (each must already be a capture of this graph).
    pub fn set_captures(&mut self, captures: Vec<ValueId>) -> Result<(), GraphError> {
        for v in &captures {
            if !self.captures.contains(&v.node) {
                return Err(GraphError::NoSuchValue(*v));
            }
        }
        self.captures = captures.iter().map(|v| v.node).collect();
        Ok(())
    }

    /// Reorders or drops graph inputs (each must already be an input of this graph).
    pub fn set_inputs(&mut self, inputs: Vec<ValueId>) -> Result<(), GraphError> {
        for v in &inputs {
            if !self.inputs.contains(&v.node) {
                return Err(GraphError::NoSuchValue(*v));
            }
        }
        self.inputs = inputs.iter().map(|v| v.node).collect();
        Ok(())
    }

    /// The node behind a handle. Panics on a dead handle: handles come from this graph.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.ix()]
    }

    /// The node behind a handle, if it is live.
    pub fn get_node(&self, id: NodeId) -> Option<&Node> {
        self.g.node_weight(id.ix())
    }

    /// The node behind a handle, mutably. Renaming outputs through this bypasses the name
    /// index: use [`Graph::rename_value`] for that.
    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.ix()]
    }

    /// All live nodes, in index order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut v: Vec<NodeId> = self.g.node_indices().map(NodeId::of).collect();
        v.sort();
        v
    }

    /// Number of live nodes (inputs and constants included).
    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// The value's name and type.
    pub fn value(&self, v: ValueId) -> &Value {
        &self.g[v.node.ix()].outputs[v.port as usize]
    }

    /// The value's type.
    pub fn value_type(&self, v: ValueId) -> &Type {
        &self.value(v).ty
    }

    /// Sets a value's type.
    pub fn set_value_type(&mut self, v: ValueId, ty: Type) {
        self.g[v.node.ix()].outputs[v.port as usize].ty = ty;
    }

    /// Renames a value, keeping the name index true.
    pub fn rename_value(&mut self, v: ValueId, name: impl Into<String>) {
        let name = name.into();
        let old = std::mem::replace(
            &mut self.g[v.node.ix()].outputs[v.port as usize].name,
            name.clone(),
        );
        self.names.remove(&old);
        if !name.is_empty() {
            self.names.insert(name);
        }
    }

    /// True when some value of this graph has this name.
    pub fn has_value_name(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// A value name not used in this graph: `base`, or `base_1`, `base_2`, …
    pub fn fresh_name(&self, base: &str) -> String {
        if !base.is_empty() && !self.names.contains(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !self.names.contains(n))
            .unwrap_or_default()
    }

    /// The inputs of a node by port (`None`: absent optional input).
    pub fn node_inputs(&self, id: NodeId) -> Vec<Option<ValueId>> {
        let n = &self.g[id.ix()];
        let mut v = vec![None; n.num_inputs];
        for e in self.g.edges_directed(id.ix(), Direction::Incoming) {
            if let Some(slot) = v.get_mut(e.weight().dst_port as usize) {
                *slot = Some(ValueId::new(NodeId::of(e.source()), e.weight().src_port));
            }
        }
        v
    }

    /// Input `port` of a node.
    pub fn node_input(&self, id: NodeId, port: usize) -> Option<ValueId> {
        self.g
            .edges_directed(id.ix(), Direction::Incoming)
            .find(|e| e.weight().dst_port as usize == port)
            .map(|e| ValueId::new(NodeId::of(e.source()), e.weight().src_port))
    }

    /// Number of edges into a node (the verifier compares it with the ports that have one).
    pub fn users_count_into(&self, id: NodeId) -> usize {
        self.g.edges_directed(id.ix(), Direction::Incoming).count()
    }

    /// Every use of a value: (node, input port), sorted.
    pub fn users(&self, v: ValueId) -> Vec<(NodeId, usize)> {
        let mut u: Vec<(NodeId, usize)> = self
            .g
            .edges_directed(v.node.ix(), Direction::Outgoing)
            .filter(|e| e.weight().src_port == v.port)
            .map(|e| (NodeId::of(e.target()), e.weight().dst_port as usize))
            .collect();
        u.sort();
        u
    }

    /// True when the value is a graph output.
    pub fn is_output(&self, v: ValueId) -> bool {
        self.outputs.contains(&v)
    }

    /// Sets (or clears) input `port` of a node, growing its arity if needed.
    pub fn set_node_input(
        &mut self,
        id: NodeId,
        port: usize,
        v: Option<ValueId>,
    ) -> Result<(), GraphError> {
        if !self.g.contains_node(id.ix()) {
            return Err(GraphError::NoSuchNode(id));
        }
        if let Some(v) = v {
            self.check_value(v)?;
        }
        let old: Vec<_> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .filter(|e| e.weight().dst_port as usize == port)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        let n = &mut self.g[id.ix()];
        if port >= n.num_inputs {
            n.num_inputs = port + 1;
        }
        if let Some(v) = v {
            self.g.add_edge(
                v.node.ix(),
                id.ix(),
                Edge {
                    src_port: v.port,
                    dst_port: port as u32,
                },
            );
        }
        Ok(())
    }

    /// Replaces a node's inputs with `inputs`.
    pub fn set_node_inputs(
        &mut self,
        id: NodeId,
        inputs: &[Option<ValueId>],
    ) -> Result<(), GraphError> {
        for v in inputs.iter().flatten() {
            self.check_value(*v)?;
        }
        let old: Vec<_> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        self.g[id.ix()].num_inputs = inputs.len();
        for (port, v) in inputs.iter().enumerate() {
            if let Some(v) = v {
                self.g.add_edge(
                    v.node.ix(),
                    id.ix(),
                    Edge {
                        src_port: v.port,
                        dst_port: port as u32,
                    },
                );
            }
        }
        Ok(())
    }

    /// Makes every use of `old` (edges and graph outputs) use `new` instead.
    ///
    /// Graph outputs keep their names: when `old` is an output, `new` takes over its name if
    /// `new` is an ordinary value, and otherwise an `Identity` node is placed in between.
    pub fn replace_all_uses(&mut self, old: ValueId, new: ValueId) -> Result<(), GraphError> {
        self.check_value(old)?;
        self.check_value(new)?;
        if old == new {
            return Ok(());
        }
        for (node, port) in self.users(old) {
            self.set_node_input(node, port, Some(new))?;
        }
        if self.is_output(old) {
            let out_name = self.value(old).name.clone();
            let new_is_named_elsewhere = self.is_output(new)
                || self.inputs.contains(&new.node)
                || self.captures.contains(&new.node)
                || matches!(self.node(new.node).op, Op::Const(_));
            let target = if new_is_named_elsewhere {
                let ty = self.value_type(new).clone();
                let id = self.add_node(
                    self.fresh_node_name("identity"),
                    Op::Identity(crate::ops::Identity {}),
                    &[Some(new)],
                    vec![Value {
                        name: String::new(),
                        ty,
                    }],
                )?;
                ValueId::new(id, 0)
            } else {
                new
            };
            self.rename_value(old, self.fresh_name(&format!("{out_name}_replaced")));
            self.rename_value(target, out_name);
            for o in self.outputs.iter_mut() {
                if *o == old {
                    *o = target;
                }
            }
        }
        Ok(())
    }

    /// A node name not used by another node: `base`, or `base_1`, …
    pub fn fresh_node_name(&self, base: &str) -> String {
        let used: HashSet<&str> = self.g.node_weights().map(|n| n.name.as_str()).collect();
        if !used.contains(base) {
            return base.to_string();
        }
        (1..)
            .map(|i| format!("{base}_{i}"))
            .find(|n| !used.contains(n.as_str()))
            .unwrap_or_default()
    }

    /// Removes a node and its edges. Graph inputs, captures and outputs that it produced are
    /// dropped from their lists.
    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        let n = self.g.remove_node(id.ix())?;
        for v in &n.outputs {
            self.names.remove(&v.name);
        }
        self.inputs.retain(|x| *x != id);
        self.captures.retain(|x| *x != id);
        self.outputs.retain(|v| v.node != id);
        Some(n)
    }

    /// The nodes in a deterministic topological order: among the ready nodes, the lowest
    /// index first (so an imported model keeps its file order). Fails on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        let mut indeg: HashMap<NodeIndex, usize> = HashMap::new();
        for ix in self.g.node_indices() {
            let preds: HashSet<NodeIndex> =
                self.g.neighbors_directed(ix, Direction::Incoming).collect();
            indeg.insert(ix, preds.len());
        }
        let mut ready: BTreeSet<NodeIndex> = indeg
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(ix, _)| *ix)
            .collect();
        let mut order = Vec::with_capacity(self.g.node_count());
        while let Some(ix) = ready.pop_first() {
            order.push(NodeId::of(ix));
            let succs: HashSet<NodeIndex> =
                self.g.neighbors_directed(ix, Direction::Outgoing).collect();
            for s in succs {
                if let Some(d) = indeg.get_mut(&s) {
                    *d -= 1;
                    if *d == 0 {
                        ready.insert(s);
                    }
                }
            }
        }
        if order.len() != self.g.node_count() {
            let stuck = self
                .g
                .node_indices()
                .find(|ix| indeg.get(ix).copied().unwrap_or(0) > 0)
                .map(|ix| self.display_node_name(NodeId::of(ix)))
                .unwrap_or_default();
            return Err(GraphError::Cycle(stuck));
        }
        Ok(order)
    }

    /// A name for messages: the node name, or its first output's name, or its index.
    pub fn display_node_name(&self, id: NodeId) -> String {
        match self.get_node(id) {
            Some(n) if !n.name.is_empty() => n.name.clone(),
            Some(n) => n
                .outputs
                .iter()
                .find(|v| !v.name.is_empty())
                .map(|v| v.name.clone())
                .unwrap_or_else(|| format!("#{}", id.0)),
            None => format!("#{}", id.0),
        }
    }

    /// Removes every node that no graph output depends on (graph inputs and captures stay).
    /// Returns the number of nodes removed.
    pub fn remove_dead_nodes(&mut self) -> usize {
        let mut live: HashSet<NodeIndex> = HashSet::new();
        let mut stack: Vec<NodeIndex> = self.outputs.iter().map(|v| v.node.ix()).collect();
        stack.extend(self.inputs.iter().map(|n| n.ix()));
        stack.extend(self.captures.iter().map(|n| n.ix()));
        while let Some(ix) = stack.pop() {
            if live.insert(ix) {
                stack.extend(self.g.neighbors_directed(ix, Direction::Incoming));
            }
        }
        let dead: Vec<NodeIndex> = self
            .g
            .node_indices()
            .filter(|ix| !live.contains(ix))
            .collect();
        for ix in &dead {
            self.remove_node(NodeId::of(*ix));
        }
        dead.len()
    }

    /// Every value of this graph by name (unnamed values are skipped).
    pub fn values_by_name(&self) -> HashMap<String, ValueId> {
        let mut m = HashMap::new();
        for ix in self.g.node_indices() {
            for (p, v) in self.g[ix].outputs.iter().enumerate() {
                if !v.name.is_empty() {
                    m.insert(v.name.clone(), ValueId::new(NodeId::of(ix), p as u32));
                }
            }
        }
        m
    }

    /// The constant behind a value, if its producer is a constant.
    pub fn const_value(&self, v: ValueId) -> Option<&crate::Tensor> {
        match &self.get_node(v.node)?.op {
            Op::Const(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ops, DType, Tensor};

    fn relu_graph() -> (Graph, ValueId, NodeId) {
        let mut g = Graph::new("t");
        let x = g.add_input("x", Type::tensor(DType::F32, &[2]));
        let r = g
            .add_node(
                "r",
                Op::Relu(ops::Relu {}),
                &[Some(x)],
                vec![Value {
                    name: "y".into(),
                    ty: Type::tensor(DType::F32, &[2]),
                }],
            )
            .unwrap();
        g.set_outputs(vec![ValueId::new(r, 0)]).unwrap();
        (g, x, r)
    }

    #[test]
    fn replacing_an_output_keeps_its_name() {
        let (mut g, x, r) = relu_graph();
        let c = g.add_const("c", Tensor::from_vec(vec![2], &[1.0f32, 2.0]).unwrap());
        g.replace_all_uses(ValueId::new(r, 0), c).unwrap();
        // The constant keeps its own name; an Identity carries the output name.
        let out = g.outputs()[0];
        assert_eq!(g.value(out).name, "y");
        assert_eq!(g.node_inputs(out.node), vec![Some(c)]);
        assert_eq!(g.remove_dead_nodes(), 1); // the Relu
        assert!(g.contains_value(x));
    }

    #[test]
    fn topo_order_is_deterministic_and_finds_cycles() {
        let (mut g, x, r) = relu_graph();
        assert_eq!(g.topo_order().unwrap(), vec![x.node, r]);
        let r2 = g
            .add_node(
                "r2",
                Op::Relu(ops::Relu {}),
                &[Some(ValueId::new(r, 0))],
                vec![Value {
                    name: "z".into(),
                    ty: Type::Unknown,
                }],
            )
            .unwrap();
        g.set_node_input(r, 0, Some(ValueId::new(r2, 0))).unwrap();
        assert!(matches!(g.topo_order(), Err(GraphError::Cycle(_))));
    }
}
