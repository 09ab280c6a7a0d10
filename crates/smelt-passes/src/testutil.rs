//! Test helpers: a small builder for hand-made graphs.

use smelt_ir::tensor::Element;
use smelt_ir::{Attr, DType, Graph, NodeId, Op, Tensor, Type, Value, ValueId};

/// Builds a graph node by node; types are inferred by [`B::finish`].
pub(crate) struct B {
    pub(crate) g: Graph,
}

/// An op from its ONNX name and attributes.
pub(crate) fn op(name: &str, attrs: &[(&str, Attr)]) -> Op {
    Op::from_parts(
        name,
        attrs
            .iter()
            .map(|(k, a)| (k.to_string(), a.clone()))
            .collect(),
    )
    .unwrap()
}

impl B {
    pub(crate) fn new() -> B {
        B { g: Graph::new("t") }
    }
    pub(crate) fn input(&mut self, name: &str, dt: DType, dims: &[usize]) -> ValueId {
        self.g.add_input(name, Type::tensor(dt, dims))
    }
    pub(crate) fn c<T: Element>(&mut self, name: &str, dims: &[usize], v: &[T]) -> ValueId {
        self.g
            .add_const(name, Tensor::from_vec(dims.to_vec(), v).unwrap())
    }
    /// A one-output node named after its output.
    pub(crate) fn op(&mut self, name: &str, o: Op, ins: &[ValueId]) -> ValueId {
        let ins: Vec<Option<ValueId>> = ins.iter().map(|v| Some(*v)).collect();
        ValueId::new(self.node(name, o, &ins, 1), 0)
    }
    /// A node with optional inputs and `n` outputs (`name`, `name_1`, …).
    pub(crate) fn node(&mut self, name: &str, o: Op, ins: &[Option<ValueId>], n: usize) -> NodeId {
        let outputs = (0..n)
            .map(|i| Value {
                name: if i == 0 {
                    name.to_string()
                } else {
                    format!("{name}_{i}")
                },
                ty: Type::Unknown,
            })
            .collect();
        self.g.add_node(name, o, ins, outputs).unwrap()
    }
    pub(crate) fn finish(mut self, outs: &[ValueId]) -> Graph {
        self.g.set_outputs(outs.to_vec()).unwrap();
        smelt_ir::infer::infer_graph(&mut self.g).unwrap();
        smelt_ir::verify(&self.g).unwrap();
        self.g
    }
}
