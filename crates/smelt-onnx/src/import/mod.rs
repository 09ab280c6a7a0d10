//! ONNX → IR.
//!
//! Reading is separated from optimising (as in tract): the importer builds the IR as the file
//! says, turning old-opset forms into the newest op form ([`legacy`]), Constant nodes and
//! initializers into constants, and every node it cannot type into [`Op::Opaque`] so that the
//! model still round-trips. Names are kept; where ONNX repeats or omits them, they are made
//! unique deterministically (`name__2`, `Relu_3`).

pub mod legacy;
pub mod tensor;

use crate::error::ImportError;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::type_proto;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto, TypeProto, ValueInfoProto};
use protobuf::Message;
use smelt_ir::{Attr, DType, Dim, Graph, Model, Op, OpaqueOp, TensorType, Type, Value, ValueId};
use std::collections::HashMap;
use std::path::Path;
use tensor::{sparse_to_dense, tensor_from_proto, DataDir};

/// Nesting depth of subgraphs beyond which a model is refused.
const MAX_DEPTH: usize = 64;

/// Reads a model file (external data is resolved relative to its folder).
pub fn load_model(path: &Path) -> Result<Model, ImportError> {
    let bytes = std::fs::read(path).map_err(|err| ImportError::Io {
        path: path.to_path_buf(),
        err,
    })?;
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    read_model(bytes, dir)
}

/// Parses model bytes. `dir` is where external data may be read from (none: refused).
pub fn read_model(bytes: Vec<u8>, dir: Option<&Path>) -> Result<Model, ImportError> {
    let mut mp = ModelProto::parse_from_bytes(&bytes).map_err(|e| ImportError::Protobuf {
        what: "model",
        msg: e.to_string(),
    })?;
    drop(bytes);
    let gp = mp
        .graph
        .0
        .take()
        .map(|b| *b)
        .ok_or_else(|| ImportError::Graph {
            graph: String::new(),
            msg: "the model has no graph".into(),
        })?;
    let opsets: Vec<(String, i64)> = if mp.opset_import.is_empty() {
        // IR version 1/2 models may omit opset_import: opset 1.
        vec![(String::new(), 1)]
    } else {
        mp.opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect()
    };
    let default_opset = opsets
        .iter()
        .find(|(d, _)| d.is_empty() || d == "ai.onnx")
        .map(|(_, v)| *v)
        .unwrap_or(1);
    let mut cx = ImportCx {
        opset: default_opset,
        dir: DataDir(dir.map(|d| d.to_path_buf())),
        node_names: HashMap::new(),
    };
    let graph = cx.graph(gp, &[], 0)?;
    let mut model = Model::new(graph, default_opset);
    model.opsets = opsets;
    model.ir_version = mp.ir_version;
    model.producer_name = std::mem::take(&mut mp.producer_name);
    model.producer_version = std::mem::take(&mut mp.producer_version);
    model.domain = std::mem::take(&mut mp.domain);
    model.model_version = mp.model_version;
    model.doc_string = std::mem::take(&mut mp.doc_string);
    model.metadata = mp
        .metadata_props
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    // What the IR does not model (local functions, training info, unknown fields) is kept.
    mp.opset_import.clear();
    mp.metadata_props.clear();
    model.passthrough = mp.write_to_bytes().map_err(|e| ImportError::Protobuf {
        what: "model",
        msg: e.to_string(),
    })?;
    if let Err(errs) = smelt_ir::infer::infer_graph(&mut model.graph) {
        let e = &errs[0];
        return Err(ImportError::Node {
            node: e.node.clone(),
            op_type: e.op.clone(),
            msg: e.msg.clone(),
        });
    }
    Ok(model)
}

/// Converts an ONNX TypeProto.
pub fn type_from_proto(t: &TypeProto) -> Type {
    match &t.value {
        Some(type_proto::Value::TensorType(tt)) => {
            Type::Tensor(tensor_type(tt.elem_type, tt.shape.as_ref()))
        }
        Some(type_proto::Value::SparseTensorType(tt)) => {
            Type::SparseTensor(tensor_type(tt.elem_type, tt.shape.as_ref()))
        }
        Some(type_proto::Value::SequenceType(s)) => Type::Sequence(Box::new(
            s.elem_type
                .as_ref()
                .map(type_from_proto)
                .unwrap_or(Type::Unknown),
        )),
        Some(type_proto::Value::OptionalType(s)) => Type::Optional(Box::new(
            s.elem_type
                .as_ref()
                .map(type_from_proto)
                .unwrap_or(Type::Unknown),
        )),
        Some(type_proto::Value::MapType(m)) => match DType::from_code(m.key_type) {
            Some(k) => Type::Map(
                k,
                Box::new(
                    m.value_type
                        .as_ref()
                        .map(type_from_proto)
                        .unwrap_or(Type::Unknown),
                ),
            ),
            None => Type::Unknown,
        },
        // The oneof is non-exhaustive; a newer kind of type is unknown to the IR.
        _ => Type::Unknown,
    }
}

fn tensor_type(elem: i32, shape: Option<&onnx_protobuf::TensorShapeProto>) -> TensorType {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
    TensorType {
        dtype: DType::from_code(elem),
        shape: shape.map(|s| {
            s.dim
                .iter()
                .map(|d| match &d.value {
                    Some(D::DimValue(v)) if *v >= 0 => Dim::Known(*v as u64),
                    Some(D::DimParam(p)) if !p.is_empty() => Dim::Sym(p.clone()),
                    _ => Dim::Unknown,
                })
                .collect()
        }),
    }
}

struct ImportCx {
    opset: i64,
    dir: DataDir,
    node_names: HashMap<String, usize>,
}

/// Names visible in one graph being built: its own values, and (through captures) outer ones.
struct Scope {
    local: HashMap<String, ValueId>,
}

impl ImportCx {
    fn node_err(&self, n: &NodeProto, msg: impl Into<String>) -> ImportError {
        let name = if !n.name.is_empty() {
            n.name.clone()
        } else {
            n.output.first().cloned().unwrap_or_default()
        };
        ImportError::Node {
            node: name,
            op_type: n.op_type.clone(),
            msg: msg.into(),
        }
    }

    fn unique_node_name(&mut self, name: &str, op_type: &str) -> String {
        let base = if name.is_empty() {
            op_type.to_string()
        } else {
            name.to_string()
        };
        let count = self.node_names.entry(base.clone()).or_insert(0);
        *count += 1;
        if *count == 1 && !name.is_empty() {
            base
        } else {
            format!("{base}_{}", *count - usize::from(!name.is_empty()))
        }
    }

    /// Resolves a name used in graph `g`: local values first, then outer scopes (which makes
    /// the value a capture of `g`).
    fn resolve(
        &self,
        g: &mut Graph,
        scope: &mut Scope,
        outer: &[&HashMap<String, Type>],
        name: &str,
    ) -> Option<ValueId> {
        if let Some(v) = scope.local.get(name) {
            return Some(*v);
        }
        let ty = outer.iter().rev().find_map(|m| m.get(name))?.clone();
        let v = g.add_capture(name, ty);
        scope.local.insert(name.to_string(), v);
        Some(v)
    }

    fn define(&self, g: &mut Graph, scope: &mut Scope, v: ValueId, name: &str) {
        if name.is_empty() {
            return;
        }
        // ONNX is SSA; a repeated name is made unique and later uses see the newest one.
        if scope.local.contains_key(name) {
            let fresh = g.fresh_name(&format!("{name}_"));
            g.rename_value(v, fresh);
        }
        scope.local.insert(name.to_string(), v);
    }

    fn graph(
        &mut self,
        mut gp: GraphProto,
        outer: &[&HashMap<String, Type>],
        depth: usize,
    ) -> Result<Graph, ImportError> {
        if depth > MAX_DEPTH {
            return Err(ImportError::Unsupported(format!(
                "subgraphs nested deeper than {MAX_DEPTH}"
            )));
        }
        let gname = gp.name.clone();
        let gerr = |msg: String| ImportError::Graph {
            graph: gname.clone(),
            msg,
        };
        let mut g = Graph::new(gp.name.clone());
        g.doc_string = std::mem::take(&mut gp.doc_string);
        g.metadata = gp
            .metadata_props
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let mut scope = Scope {
            local: HashMap::new(),
        };
        let declared: HashMap<String, Type> = gp
            .value_info
            .iter()
            .chain(gp.output.iter())
            .filter_map(|vi| {
                vi.type_
                    .as_ref()
                    .map(|t| (vi.name.clone(), type_from_proto(t)))
            })
            .collect();

        // Initializers (dense and sparse) become constants.
        let mut init_names = std::collections::HashSet::new();
        for t in std::mem::take(&mut gp.initializer) {
            let name = t.name.clone();
            if name.is_empty() {
                return Err(gerr("an initializer has no name".into()));
            }
            let tensor = tensor_from_proto(t, &self.dir)?;
            let v = g.add_const(name.clone(), tensor);
            self.define(&mut g, &mut scope, v, &name);
            init_names.insert(name);
        }
        for s in std::mem::take(&mut gp.sparse_initializer) {
            let name = s
                .values
                .as_ref()
                .map(|v| v.name.clone())
                .unwrap_or_default();
            if name.is_empty() {
                return Err(gerr("a sparse initializer has no name".into()));
            }
            let tensor = sparse_to_dense(s, &self.dir)?;
            let v = g.add_const(name.clone(), tensor);
            self.define(&mut g, &mut scope, v, &name);
            init_names.insert(name);
        }
        // Graph inputs; those with an initializer (IR < 4 lists every weight as an input) stay
        // constants: their value is the initializer's.
        let mut inputs = vec![];
        for vi in &gp.input {
            if init_names.contains(&vi.name) {
                continue;
            }
            if vi.name.is_empty() {
                return Err(gerr("a graph input has no name".into()));
            }
            let ty = vi
                .type_
                .as_ref()
                .map(type_from_proto)
                .unwrap_or(Type::Unknown);
            let v = g.add_input(vi.name.clone(), ty);
            self.define(&mut g, &mut scope, v, &vi.name);
            inputs.push(v);
        }
        // Names this graph defines, for its subgraphs to capture.
        for n in std::mem::take(&mut gp.node) {
            self.node(&mut g, &mut scope, outer, n, &declared, depth)?;
        }
        let mut outputs = vec![];
        for vi in &gp.output {
            let v = self
                .resolve(&mut g, &mut scope, outer, &vi.name)
                .ok_or_else(|| gerr(format!("graph output `{}` is never computed", vi.name)))?;
            // An output that is an input or a constant, or listed twice, is written through an
            // Identity so that each output has its own named value.
            let needs_copy = outputs.contains(&v) || g.value(v).name != vi.name;
            let v = if needs_copy {
                let ty = g.value_type(v).clone();
                let name = g.fresh_name(&vi.name);
                let id = g
                    .add_node(
                        g.fresh_node_name("output_copy"),
                        Op::Identity(smelt_ir::ops::Identity {}),
                        &[Some(v)],
                        vec![Value { name, ty }],
                    )
                    .map_err(|e| gerr(e.to_string()))?;
                ValueId::new(id, 0)
            } else {
                v
            };
            if let Some(t) = vi.type_.as_ref().map(type_from_proto) {
                if let Ok(m) = smelt_ir::infer::merge_declared(g.value_type(v), &t) {
                    g.set_value_type(v, m);
                }
            }
            outputs.push(v);
        }
        g.set_outputs(outputs).map_err(|e| gerr(e.to_string()))?;
        Ok(g)
    }

    fn attr(
        &mut self,
        a: AttributeProto,
        node: &NodeProto,
        outer: &[&HashMap<String, Type>],
        depth: usize,
    ) -> Result<(String, Attr), ImportError> {
        let name = a.name.clone();
        if !a.ref_attr_name.is_empty() {
            return Err(self.node_err(
                node,
                format!("attribute `{name}` refers to a function attribute outside a function"),
            ));
        }
        let ty = a
            .type_
            .enum_value()
            .map_err(|v| self.node_err(node, format!("attribute `{name}` has unknown type {v}")))?;
        // IR version 1 files may leave the type undefined: take the field that is set.
        let ty = if ty == AttributeType::UNDEFINED {
            if a.g.is_some() {
                AttributeType::GRAPH
            } else if a.t.is_some() {
                AttributeType::TENSOR
            } else if !a.floats.is_empty() {
                AttributeType::FLOATS
            } else if !a.ints.is_empty() {
                AttributeType::INTS
            } else if !a.strings.is_empty() {
                AttributeType::STRINGS
            } else if !a.s.is_empty() {
                AttributeType::STRING
            } else if a.f != 0.0 {
                AttributeType::FLOAT
            } else {
                AttributeType::INT
            }
        } else {
            ty
        };
        let v = match ty {
            AttributeType::FLOAT => Attr::Float(a.f),
            AttributeType::INT => Attr::Int(a.i),
            AttributeType::STRING => Attr::Str(a.s),
            AttributeType::FLOATS => Attr::Floats(a.floats),
            AttributeType::INTS => Attr::Ints(a.ints),
            AttributeType::STRINGS => Attr::Strs(a.strings),
            AttributeType::TENSOR => {
                let t = a.t.0.map(|b| *b).ok_or_else(|| {
                    self.node_err(node, format!("attribute `{name}` has no tensor"))
                })?;
                Attr::Tensor(tensor_from_proto(t, &self.dir)?)
            }
            AttributeType::TENSORS => Attr::Tensors(
                a.tensors
                    .into_iter()
                    .map(|t| tensor_from_proto(t, &self.dir))
                    .collect::<Result<_, _>>()?,
            ),
            AttributeType::GRAPH => {
                let gp = a.g.0.map(|b| *b).ok_or_else(|| {
                    self.node_err(node, format!("attribute `{name}` has no graph"))
                })?;
                Attr::Graph(Box::new(self.graph(gp, outer, depth + 1)?))
            }
            AttributeType::GRAPHS => Attr::Graphs(
                a.graphs
                    .into_iter()
                    .map(|gp| self.graph(gp, outer, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            AttributeType::TYPE_PROTO => {
                let t = a.tp.0.ok_or_else(|| {
                    self.node_err(node, format!("attribute `{name}` has no type"))
                })?;
                Attr::Type(type_from_proto(&t))
            }
            AttributeType::TYPE_PROTOS => {
                Attr::Types(a.type_protos.iter().map(type_from_proto).collect())
            }
            AttributeType::SPARSE_TENSOR
                if name == "sparse_value" && node.op_type == "Constant" =>
            {
                let st = a
                    .sparse_tensor
                    .0
                    .map(|b| *b)
                    .ok_or_else(|| self.node_err(node, "sparse_value is empty"))?;
                Attr::Tensor(sparse_to_dense(st, &self.dir)?)
            }
            AttributeType::SPARSE_TENSOR | AttributeType::SPARSE_TENSORS => {
                return Err(ImportError::Unsupported(format!(
                    "sparse tensor attribute `{name}` on node `{}` ({})",
                    node.name, node.op_type
                )))
            }
            AttributeType::UNDEFINED => Attr::Int(a.i),
        };
        Ok((name, v))
    }

    fn node(
        &mut self,
        g: &mut Graph,
        scope: &mut Scope,
        outer: &[&HashMap<String, Type>],
        mut n: NodeProto,
        declared: &HashMap<String, Type>,
        depth: usize,
    ) -> Result<(), ImportError> {
        let default_domain = n.domain.is_empty() || n.domain == "ai.onnx";
        // Subgraphs see this graph's values so far (and the outer ones).
        let visible: HashMap<String, Type> = scope
            .local
            .iter()
            .map(|(k, v)| (k.clone(), g.value_type(*v).clone()))
            .collect();
        let mut chain: Vec<&HashMap<String, Type>> = outer.to_vec();
        chain.push(&visible);
        let mut attrs = Vec::with_capacity(n.attribute.len());
        for a in std::mem::take(&mut n.attribute) {
            attrs.push(self.attr(a, &n, &chain, depth)?);
        }
        // Constant nodes become constants.
        if default_domain && n.op_type == "Constant" {
            if n.output.len() != 1 {
                return Err(self.node_err(&n, "Constant must have one output"));
            }
            let t = match attrs.pop() {
                Some((k, a)) if attrs.is_empty() => constant_value(&k, a).ok_or_else(|| {
                    self.node_err(&n, format!("unsupported Constant attribute `{k}`"))
                })?,
                _ => {
                    return Err(self.node_err(&n, "Constant must have exactly one value attribute"))
                }
            };
            let v = g.add_const(n.output[0].clone(), t);
            self.define(g, scope, v, &n.output[0].clone());
            return Ok(());
        }
        // Captures: every subgraph of this node shares the node's capture list.
        let mut capture_names: Vec<String> = vec![];
        for (_, a) in attrs.iter() {
            for sub in a.graphs() {
                for c in sub.captures() {
                    let nm = sub.value(c).name.clone();
                    if !capture_names.contains(&nm) {
                        capture_names.push(nm);
                    }
                }
            }
        }
        if !capture_names.is_empty() {
            for (_, a) in attrs.iter_mut() {
                for sub in a.graphs_mut() {
                    let mut have = sub.values_by_name();
                    let mut order = vec![];
                    for nm in &capture_names {
                        let v = match have.get(nm).copied().filter(|v| sub.captures().contains(v)) {
                            Some(v) => v,
                            None => {
                                let ty = visible
                                    .get(nm)
                                    .or_else(|| outer.iter().rev().find_map(|m| m.get(nm)))
                                    .cloned()
                                    .unwrap_or(Type::Unknown);
                                let v = sub.add_capture(nm.clone(), ty);
                                have.insert(nm.clone(), v);
                                v
                            }
                        };
                        order.push(v);
                    }
                    sub.set_captures(order)
                        .map_err(|e| self.node_err(&n, e.to_string()))?;
                }
            }
        }
        let mut inputs: Vec<Option<ValueId>> = Vec::with_capacity(n.input.len());
        for name in &n.input {
            if name.is_empty() {
                inputs.push(None);
            } else {
                let v = self.resolve(g, scope, outer, name).ok_or_else(|| {
                    self.node_err(
                        &n,
                        format!("input `{name}` is not defined before this node"),
                    )
                })?;
                inputs.push(Some(v));
            }
        }
        let explicit = inputs.len();
        for nm in &capture_names {
            let v = self.resolve(g, scope, outer, nm).ok_or_else(|| {
                self.node_err(&n, format!("subgraph uses `{nm}`, which is not defined"))
            })?;
            inputs.push(Some(v));
        }
        let in0 = inputs
            .first()
            .copied()
            .flatten()
            .map(|v| g.value_type(v).clone());
        let op = if default_domain {
            let typed = match legacy::normalize(
                &n.op_type,
                self.opset,
                attrs.clone(),
                explicit,
                in0.as_ref().and_then(|t| t.dtype()),
                in0.as_ref().and_then(|t| t.shape().map(|s| s.len())),
            ) {
                legacy::Normalized::Typed { attrs: a2, extra }
                    if capture_names.is_empty() || matches!(n.op_type.as_str(), "If" | "Loop") =>
                {
                    match Op::from_parts(&n.op_type, a2) {
                        Ok(op) => {
                            for (port, t) in extra {
                                let cname = g.fresh_name(&format!(
                                    "{}_{}",
                                    if n.name.is_empty() {
                                        &n.op_type
                                    } else {
                                        &n.name
                                    },
                                    port
                                ));
                                let c = g.add_const(cname, t);
                                if inputs.len() <= port {
                                    inputs.resize(port + 1, None);
                                }
                                inputs[port] = Some(c);
                            }
                            Some(op)
                        }
                        Err(_) => None,
                    }
                }
                _ => None,
            };
            typed.unwrap_or_else(|| {
                Op::Opaque(OpaqueOp {
                    domain: n.domain.clone(),
                    op_type: n.op_type.clone(),
                    attrs,
                })
            })
        } else {
            Op::Opaque(OpaqueOp {
                domain: n.domain.clone(),
                op_type: n.op_type.clone(),
                attrs,
            })
        };
        let outputs: Vec<Value> = n
            .output
            .iter()
            .map(|o| Value {
                name: o.clone(),
                ty: declared.get(o).cloned().unwrap_or(Type::Unknown),
            })
            .collect();
        let name = self.unique_node_name(&n.name, &n.op_type);
        let id = g
            .add_node(name, op, &inputs, outputs)
            .map_err(|e| self.node_err(&n, e.to_string()))?;
        {
            let node = g.node_mut(id);
            node.doc_string = std::mem::take(&mut n.doc_string);
            node.metadata = n
                .metadata_props
                .iter()
                .map(|kv| (kv.key.clone(), kv.value.clone()))
                .collect();
        }
        for (port, o) in n.output.iter().enumerate() {
            self.define(g, scope, ValueId::new(id, port as u32), o);
        }
        // Types of this node's outputs are needed by later legacy decisions (Softmax rank).
        if let Ok(types) = smelt_ir::infer::infer_node(g, id) {
            for (port, t) in types.into_iter().enumerate() {
                let v = ValueId::new(id, port as u32);
                if g.contains_value(v) {
                    if let Ok(m) = smelt_ir::infer::merge_declared(&t, g.value_type(v)) {
                        g.set_value_type(v, m);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The tensor of a Constant node's value attribute.
fn constant_value(key: &str, a: Attr) -> Option<smelt_ir::Tensor> {
    use smelt_ir::Tensor;
    match (key, a) {
        ("value" | "sparse_value", Attr::Tensor(t)) => Some(t),
        ("value_float", Attr::Float(f)) => Some(Tensor::scalar(f)),
        ("value_floats", Attr::Floats(v)) => Tensor::from_vec(vec![v.len()], &v).ok(),
        ("value_int", Attr::Int(i)) => Some(Tensor::scalar(i)),
        ("value_ints", Attr::Ints(v)) => Tensor::from_vec(vec![v.len()], &v).ok(),
        ("value_string", Attr::Str(s)) => Tensor::from_strings(vec![], vec![s]).ok(),
        ("value_strings", Attr::Strs(v)) => Tensor::from_strings(vec![v.len()], v).ok(),
        _ => None,
    }
}

/// The value_info entries of a graph, for tools that want the declared types.
pub fn declared_types(g: &GraphProto) -> Vec<&ValueInfoProto> {
    g.value_info.iter().collect()
}
