//! IR → ONNX.
//!
//! Writes a `ModelProto` that keeps names, opset imports, metadata and doc strings, with
//! deterministic bytes. The main graph's large constants are streamed straight from the IR's
//! shared storage into the file (the protobuf framing is written by hand around them), so a
//! large model is never held twice in memory; with `external_data` they go to a side file.

pub mod legacy;

use crate::error::ExportError;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::Message;
use smelt_ir::{Attr, DType, Dim, Graph, Model, Op, Tensor, Type, ValueId};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Constants at least this large are streamed rather than copied into the protobuf message.
const STREAM_MIN_BYTES: usize = 1024;

/// How to write a model.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Write constants of at least this many bytes to a side file (`<model file>.data`)
    /// instead of the model file, as onnxruntime and the ONNX tools do.
    pub external_data_threshold: Option<usize>,
}

/// The IR version a given default-domain opset needs at least.
pub fn ir_version_for_opset(opset: i64) -> i64 {
    match opset {
        ..=8 => 3,
        9 => 4,
        10 => 5,
        11 => 6,
        12..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        21..=22 => 10,
        _ => 11,
    }
}

struct Streamed {
    proto_prefix: Vec<u8>,
    data: Tensor,
}

struct Writer {
    opset: i64,
    external: Option<(usize, PathBuf, String)>,
    external_file: Vec<(Tensor, u64)>,
    external_len: u64,
}

fn node_err(g: &Graph, id: smelt_ir::NodeId, msg: impl Into<String>) -> ExportError {
    ExportError::Node {
        node: g.display_node_name(id),
        op_type: g.node(id).op.op_type().to_string(),
        msg: msg.into(),
    }
}

/// The ONNX type of an IR type.
pub fn type_to_proto(t: &Type) -> Option<TypeProto> {
    use onnx_protobuf::type_proto;
    let mut tp = TypeProto::new();
    match t {
        Type::Tensor(tt) | Type::SparseTensor(tt) => {
            let mut x = type_proto::Tensor::new();
            x.elem_type = tt.dtype.map(|d| d.code()).unwrap_or(0);
            if let Some(s) = &tt.shape {
                x.shape = protobuf::MessageField::some(shape_to_proto(s));
            }
            if matches!(t, Type::Tensor(_)) {
                tp.set_tensor_type(x);
            } else {
                let mut st = type_proto::SparseTensor::new();
                st.elem_type = x.elem_type;
                st.shape = x.shape;
                tp.value = Some(type_proto::Value::SparseTensorType(st));
            }
        }
        Type::Sequence(e) => {
            let mut s = type_proto::Sequence::new();
            s.elem_type = type_to_proto(e).into();
            tp.value = Some(type_proto::Value::SequenceType(s));
        }
        Type::Optional(e) => {
            let mut s = type_proto::Optional::new();
            s.elem_type = type_to_proto(e).into();
            tp.value = Some(type_proto::Value::OptionalType(s));
        }
        Type::Map(k, v) => {
            let mut m = type_proto::Map::new();
            m.key_type = k.code();
            m.value_type = type_to_proto(v).into();
            tp.value = Some(type_proto::Value::MapType(m));
        }
        Type::Unknown => return None,
    }
    Some(tp)
}

fn shape_to_proto(s: &[Dim]) -> TensorShapeProto {
    use onnx_protobuf::tensor_shape_proto::{dimension::Value as D, Dimension};
    let mut sp = TensorShapeProto::new();
    for d in s {
        let mut dim = Dimension::new();
        dim.value = match d {
            Dim::Known(n) => Some(D::DimValue(*n as i64)),
            Dim::Sym(p) => Some(D::DimParam(p.clone())),
            Dim::Unknown => None,
        };
        sp.dim.push(dim);
    }
    sp
}

/// A TensorProto holding `t` (raw_data for everything but strings).
pub fn tensor_to_proto(name: &str, t: &Tensor) -> TensorProto {
    let mut p = tensor_header(name, t);
    match t.strings() {
        Some(s) => p.string_data = s.to_vec(),
        None => p.raw_data = t.bytes().unwrap_or_default().to_vec(),
    }
    p
}

fn tensor_header(name: &str, t: &Tensor) -> TensorProto {
    let mut p = TensorProto::new();
    p.name = name.to_string();
    p.data_type = t.dtype().code();
    p.dims = t.dims().iter().map(|d| *d as i64).collect();
    p
}

fn value_info(name: &str, t: &Type) -> ValueInfoProto {
    let mut vi = ValueInfoProto::new();
    vi.name = name.to_string();
    vi.type_ = type_to_proto(t).into();
    vi
}

fn kv(v: &[(String, String)]) -> Vec<StringStringEntryProto> {
    v.iter()
        .map(|(k, x)| {
            let mut e = StringStringEntryProto::new();
            e.key = k.clone();
            e.value = x.clone();
            e
        })
        .collect()
}

impl Writer {
    fn attr(&mut self, name: &str, a: &Attr) -> Result<AttributeProto, ExportError> {
        let mut p = AttributeProto::new();
        p.name = name.to_string();
        let ty = match a {
            Attr::Int(i) => {
                p.i = *i;
                AttributeType::INT
            }
            Attr::DType(d) => {
                p.i = d.code() as i64;
                AttributeType::INT
            }
            Attr::Float(f) => {
                p.f = *f;
                AttributeType::FLOAT
            }
            Attr::Str(s) => {
                p.s = s.clone();
                AttributeType::STRING
            }
            Attr::Ints(v) => {
                p.ints = v.clone();
                AttributeType::INTS
            }
            Attr::Floats(v) => {
                p.floats = v.clone();
                AttributeType::FLOATS
            }
            Attr::Strs(v) => {
                p.strings = v.clone();
                AttributeType::STRINGS
            }
            Attr::Tensor(t) => {
                p.t = protobuf::MessageField::some(tensor_to_proto("", t));
                AttributeType::TENSOR
            }
            Attr::Tensors(v) => {
                p.tensors = v.iter().map(|t| tensor_to_proto("", t)).collect();
                AttributeType::TENSORS
            }
            Attr::Graph(g) => {
                p.g = protobuf::MessageField::some(self.graph(g, None, false)?);
                AttributeType::GRAPH
            }
            Attr::Graphs(v) => {
                for g in v {
                    p.graphs.push(self.graph(g, None, false)?);
                }
                AttributeType::GRAPHS
            }
            Attr::Type(t) => {
                p.tp = type_to_proto(t).into();
                AttributeType::TYPE_PROTO
            }
            Attr::Types(v) => {
                p.type_protos = v.iter().filter_map(type_to_proto).collect();
                AttributeType::TYPE_PROTOS
            }
        };
        p.type_ = ty.into();
        Ok(p)
    }

    /// Writes one graph. With `stream`, large constants are left out of the message and
    /// returned for the caller to append.
    fn graph(
        &mut self,
        g: &Graph,
        mut stream: Option<&mut Vec<Streamed>>,
        list_consts_as_inputs: bool,
    ) -> Result<GraphProto, ExportError> {
        let info = smelt_ir::verify(g).map_err(|e| ExportError::Invalid(e.to_string()))?;
        let mut gp = GraphProto::new();
        gp.name = g.name.clone();
        gp.doc_string = g.doc_string.clone();
        gp.metadata_props = kv(&g.metadata);
        // Names for values the IR left unnamed but that are used.
        let mut names: HashMap<ValueId, String> = HashMap::new();
        let mut taken: HashSet<String> = g.values_by_name().into_keys().collect();
        let mut name_of = |v: ValueId, g: &Graph| -> String {
            let n = &g.value(v).name;
            if !n.is_empty() {
                return n.clone();
            }
            names
                .entry(v)
                .or_insert_with(|| {
                    let mut i = 0;
                    loop {
                        let cand = format!("smelt_tmp_{}_{}_{i}", v.node.index(), v.port);
                        if taken.insert(cand.clone()) {
                            break cand;
                        }
                        i += 1;
                    }
                })
                .clone()
        };
        let mut used_consts: Vec<ValueId> = vec![];
        let mut used_set: HashSet<ValueId> = HashSet::new();
        let mut mark = |v: ValueId, g: &Graph, used_consts: &mut Vec<ValueId>| {
            if matches!(g.node(v.node).op, Op::Const(_)) && used_set.insert(v) {
                used_consts.push(v);
            }
        };
        for &id in &info.order {
            let n = g.node(id);
            match &n.op {
                Op::Input | Op::Const(_) => continue,
                op => {
                    let inputs = g.node_inputs(id);
                    let n_caps = op
                        .subgraphs()
                        .first()
                        .map(|s| s.captures().len())
                        .unwrap_or(0);
                    let mut explicit = inputs.len().saturating_sub(n_caps);
                    // Trailing absent optional inputs are not written (and an absent `axes` is
                    // not an attribute to write for old opsets either).
                    if n_caps == 0 {
                        while explicit > 0 && inputs[explicit - 1].is_none() {
                            explicit -= 1;
                        }
                    }
                    let consts: Vec<Option<&Tensor>> = inputs[..explicit]
                        .iter()
                        .map(|v| v.and_then(|v| g.const_value(v)))
                        .collect();
                    let written = if op.domain().is_empty() && !matches!(op, Op::Opaque(_)) {
                        legacy::denormalize(op, self.opset, &consts, explicit)
                            .map_err(|m| node_err(g, id, m))?
                    } else {
                        legacy::Written {
                            attrs: vec![],
                            keep_inputs: explicit,
                            override_attrs: None,
                        }
                    };
                    let mut np = NodeProto::new();
                    np.name = n.name.clone();
                    np.op_type = op.op_type().to_string();
                    np.domain = op.domain().to_string();
                    np.doc_string = n.doc_string.clone();
                    np.metadata_props = kv(&n.metadata);
                    let mut kept: Vec<Option<ValueId>> =
                        inputs[..written.keep_inputs.min(explicit)].to_vec();
                    while matches!(kept.last(), Some(None)) {
                        kept.pop();
                    }
                    for v in &kept {
                        match v {
                            Some(v) => {
                                mark(*v, g, &mut used_consts);
                                np.input.push(name_of(*v, g));
                            }
                            None => np.input.push(String::new()),
                        }
                    }
                    for v in inputs[explicit..].iter().flatten() {
                        mark(*v, g, &mut used_consts);
                    }
                    let mut outs: Vec<String> = (0..n.outputs.len())
                        .map(|p| {
                            let v = ValueId::new(id, p as u32);
                            if n.outputs[p].name.is_empty()
                                && g.users(v).is_empty()
                                && !g.is_output(v)
                            {
                                String::new()
                            } else {
                                name_of(v, g)
                            }
                        })
                        .collect();
                    while matches!(outs.last(), Some(s) if s.is_empty()) {
                        outs.pop();
                    }
                    np.output = outs;
                    let attrs = match written.override_attrs {
                        Some(a) => a,
                        None => {
                            let mut a = op.attrs();
                            a.extend(written.attrs);
                            a
                        }
                    };
                    for (k, a) in &attrs {
                        np.attribute.push(self.attr(k, a)?);
                    }
                    gp.node.push(np);
                }
            }
        }
        for v in g.outputs() {
            mark(*v, g, &mut used_consts);
        }
        // Constants become initializers, in the order the graph holds them.
        used_consts.sort();
        let mut const_inputs = vec![];
        for v in used_consts {
            let Some(t) = g.const_value(v) else { continue };
            let name = name_of(v, g);
            if list_consts_as_inputs {
                const_inputs.push(value_info(&name, g.value_type(v)));
            }
            let big = t.byte_len() >= STREAM_MIN_BYTES && t.strings().is_none();
            if let (true, Some((threshold, _, file))) = (big, &self.external) {
                if t.byte_len() >= *threshold {
                    let mut p = tensor_header(&name, t);
                    // Align each tensor to 4 KiB as the ONNX tools do.
                    let offset = self.external_len.div_ceil(4096) * 4096;
                    self.external_len = offset + t.byte_len() as u64;
                    self.external_file.push((t.clone(), offset));
                    p.data_location = DataLocation::EXTERNAL.into();
                    p.external_data = kv(&[
                        ("location".into(), file.clone()),
                        ("offset".into(), offset.to_string()),
                        ("length".into(), t.byte_len().to_string()),
                    ]);
                    gp.initializer.push(p);
                    continue;
                }
            }
            match (&mut stream, big) {
                (Some(s), true) => {
                    let p = tensor_header(&name, t);
                    let prefix = p
                        .write_to_bytes()
                        .map_err(|e| ExportError::Protobuf(e.to_string()))?;
                    s.push(Streamed {
                        proto_prefix: prefix,
                        data: t.clone(),
                    });
                }
                _ => gp.initializer.push(tensor_to_proto(&name, t)),
            }
        }
        for v in g.inputs() {
            gp.input.push(value_info(&name_of(v, g), g.value_type(v)));
        }
        gp.input.extend(const_inputs);
        let main_graph = stream.is_some();
        for v in g.outputs() {
            let ty = g.value_type(*v);
            // A branch's outputs are written with their rank only: their extents can depend on
            // the branch, and consumers check declared extents against their own inference.
            let ty = match ty {
                Type::Tensor(t) if !main_graph => Type::Tensor(smelt_ir::TensorType {
                    dtype: t.dtype,
                    shape: t
                        .shape
                        .as_ref()
                        .map(|s| s.iter().map(|_| Dim::Unknown).collect()),
                }),
                other => other.clone(),
            };
            gp.output.push(value_info(&name_of(*v, g), &ty));
        }
        // Intermediate types help consumers (tract) and document the graph. Only for the main
        // graph: inside a branch or loop body, shapes can depend on which branch runs.
        if !main_graph {
            return Ok(gp);
        }
        let io: HashSet<ValueId> = g
            .inputs()
            .into_iter()
            .chain(g.outputs().iter().copied())
            .chain(g.captures())
            .collect();
        for &id in &info.order {
            let n = g.node(id);
            if matches!(n.op, Op::Input | Op::Const(_)) {
                continue;
            }
            for p in 0..n.outputs.len() {
                let v = ValueId::new(id, p as u32);
                if io.contains(&v) || n.outputs[p].name.is_empty() {
                    continue;
                }
                if let Type::Tensor(t) = &n.outputs[p].ty {
                    if t.dtype.is_some() {
                        gp.value_info
                            .push(value_info(&n.outputs[p].name, &n.outputs[p].ty));
                    }
                }
            }
        }
        Ok(gp)
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> u64 {
    let mut n = 1;
    let mut v = v >> 7;
    while v > 0 {
        n += 1;
        v >>= 7;
    }
    n
}

/// The opset the model is written at: its own, raised when a typed op needs a newer one and no
/// opaque default-domain op pins the old one.
fn export_opset(m: &Model) -> Result<i64, ExportError> {
    let mut need = m.opset();
    let mut pinned = None;
    fn walk(g: &Graph, need: &mut i64, pinned: &mut Option<String>) {
        for id in g.node_ids() {
            let op = &g.node(id).op;
            *need = (*need).max(legacy::min_opset(op));
            if let Op::Opaque(o) = op {
                if o.domain.is_empty() || o.domain == "ai.onnx" {
                    *pinned = Some(format!("{} ({})", g.display_node_name(id), o.op_type));
                }
            }
            for s in op.subgraphs() {
                walk(s, need, pinned);
            }
        }
    }
    walk(&m.graph, &mut need, &mut pinned);
    if need > m.opset() {
        if let Some(p) = pinned {
            return Err(ExportError::Invalid(format!(
                "the graph needs opset {need}, but node {p} is kept verbatim at opset {} and cannot be moved",
                m.opset()
            )));
        }
    }
    Ok(need)
}

/// Encodes a model; large constants are appended by `sink` rather than copied.
fn encode(
    m: &Model,
    opts: &ExportOptions,
    external: Option<(PathBuf, String)>,
    sink: &mut dyn Write,
) -> Result<Vec<(Tensor, u64)>, ExportError> {
    let opset = export_opset(m)?;
    let mut w = Writer {
        opset,
        external: match (opts.external_data_threshold, external) {
            (Some(t), Some((p, f))) => Some((t, p, f)),
            _ => None,
        },
        external_file: vec![],
        external_len: 0,
    };
    let ir_version = if opset > m.opset() {
        m.ir_version.max(ir_version_for_opset(opset))
    } else {
        m.ir_version.max(3)
    };
    let mut streamed = vec![];
    let gp = w.graph(&m.graph, Some(&mut streamed), ir_version < 4)?;
    let mut mp = if m.passthrough.is_empty() {
        ModelProto::new()
    } else {
        ModelProto::parse_from_bytes(&m.passthrough)
            .map_err(|e| ExportError::Protobuf(e.to_string()))?
    };
    mp.ir_version = ir_version;
    mp.producer_name = m.producer_name.clone();
    mp.producer_version = m.producer_version.clone();
    mp.domain = m.domain.clone();
    mp.model_version = m.model_version;
    mp.doc_string = m.doc_string.clone();
    mp.metadata_props = kv(&m.metadata);
    mp.opset_import = m
        .opsets
        .iter()
        .map(|(d, v)| {
            let mut o = OperatorSetIdProto::new();
            o.domain = d.clone();
            o.version = if d.is_empty() || d == "ai.onnx" {
                opset
            } else {
                *v
            };
            o
        })
        .collect();
    mp.graph = protobuf::MessageField::none();
    let head = mp
        .write_to_bytes()
        .map_err(|e| ExportError::Protobuf(e.to_string()))?;
    let graph_bytes = gp
        .write_to_bytes()
        .map_err(|e| ExportError::Protobuf(e.to_string()))?;
    // GraphProto.initializer = 5; TensorProto.raw_data = 9; ModelProto.graph = 7.
    let mut frames: Vec<(Vec<u8>, u64)> = vec![];
    let mut graph_len = graph_bytes.len() as u64;
    for s in &streamed {
        let data_len = s.data.byte_len() as u64;
        let mut tail = vec![];
        put_varint(&mut tail, (9 << 3) | 2);
        put_varint(&mut tail, data_len);
        let tensor_len = s.proto_prefix.len() as u64 + tail.len() as u64 + data_len;
        let mut frame = vec![];
        put_varint(&mut frame, (5 << 3) | 2);
        put_varint(&mut frame, tensor_len);
        frame.extend_from_slice(&s.proto_prefix);
        frame.extend_from_slice(&tail);
        graph_len += frame.len() as u64 + data_len;
        frames.push((frame, data_len));
    }
    let io = |e: std::io::Error| ExportError::Io {
        path: PathBuf::from("<model>"),
        err: e,
    };
    sink.write_all(&head).map_err(io)?;
    let mut gh = vec![];
    put_varint(&mut gh, (7 << 3) | 2);
    put_varint(&mut gh, graph_len);
    debug_assert_eq!(gh.len() as u64, 1 + varint_len(graph_len));
    sink.write_all(&gh).map_err(io)?;
    sink.write_all(&graph_bytes).map_err(io)?;
    for ((frame, _), s) in frames.iter().zip(&streamed) {
        sink.write_all(frame).map_err(io)?;
        sink.write_all(s.data.bytes().unwrap_or_default())
            .map_err(io)?;
    }
    Ok(w.external_file)
}

/// Encodes a model into bytes (everything inline).
pub fn model_to_bytes(m: &Model) -> Result<Vec<u8>, ExportError> {
    let mut out = vec![];
    encode(m, &ExportOptions::default(), None, &mut out)?;
    Ok(out)
}

/// Writes a model file (and, with an external-data threshold, `<file>.data` beside it).
pub fn save_model(m: &Model, path: &Path, opts: &ExportOptions) -> Result<(), ExportError> {
    let io = |e: std::io::Error, p: &Path| ExportError::Io {
        path: p.to_path_buf(),
        err: e,
    };
    let data_name = format!(
        "{}.data",
        path.file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_else(|| "model.onnx".into())
    );
    let data_path = path.with_file_name(&data_name);
    let file = std::fs::File::create(path).map_err(|e| io(e, path))?;
    let mut bw = std::io::BufWriter::with_capacity(1 << 20, file);
    let ext = encode(m, opts, Some((data_path.clone(), data_name)), &mut bw)?;
    bw.flush().map_err(|e| io(e, path))?;
    if !ext.is_empty() {
        let f = std::fs::File::create(&data_path).map_err(|e| io(e, &data_path))?;
        let mut bw = std::io::BufWriter::with_capacity(1 << 20, f);
        let mut pos = 0u64;
        for (t, offset) in ext {
            let pad = (offset - pos) as usize;
            bw.write_all(&vec![0u8; pad])
                .map_err(|e| io(e, &data_path))?;
            let b = t.bytes().unwrap_or_default();
            bw.write_all(b).map_err(|e| io(e, &data_path))?;
            pos = offset + b.len() as u64;
        }
        bw.flush().map_err(|e| io(e, &data_path))?;
    }
    Ok(())
}

/// Writes one TensorProto file (ONNX test-data layout).
pub fn write_tensor_file(path: &Path, name: &str, t: &Tensor) -> Result<(), ExportError> {
    let bytes = tensor_to_proto(name, t)
        .write_to_bytes()
        .map_err(|e| ExportError::Protobuf(e.to_string()))?;
    std::fs::write(path, bytes).map_err(|e| ExportError::Io {
        path: path.to_path_buf(),
        err: e,
    })
}

/// Element type of a TensorProto data-type code, for tools.
pub fn dtype_of_code(code: i32) -> Option<DType> {
    DType::from_code(code)
}
