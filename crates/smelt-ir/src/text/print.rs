//! The printer: graph → text (the grammar is in docs/ir.md; [`super::parse`] reads it back).
//!
//! Constants print as `#` + their 64-bit content hash, or inline when they are small. Opaque ops
//! print with a leading `@` (and their domain, `@com.microsoft::FusedGemm`), so that reading
//! the text back never turns an opaque node into a typed one.

use crate::attr::Attr;
use crate::graph::{Graph, ValueId};
use crate::types::{Dim, TensorType, Type};
use crate::{DType, Model, Op, Tensor};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// Constants with at most this many elements print inline.
pub const INLINE_MAX_ELEMENTS: usize = 8;

/// True for characters that may appear in a name without quotes.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-' | ':')
}

/// A name as the text form writes it: bare when it is made of [`is_name_char`] characters and
/// does not end with `:`, else quoted with escapes.
pub fn fmt_name(name: &str) -> String {
    if !name.is_empty() && name.chars().all(is_name_char) && !name.ends_with(':') {
        name.to_string()
    } else {
        quote(name.as_bytes())
    }
}

/// A quoted string with `\"`, `\\`, `\n`, `\t` and `\xNN` escapes.
pub fn quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    let text = String::from_utf8_lossy(s);
    let exact = text.as_bytes() == s;
    if exact {
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
    } else {
        for b in s {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(*b as char),
                _ => {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// A float the way the text form writes it: shortest round-trip form, always with a `.` or an
/// exponent so it never reads back as an integer.
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        let s = format!("{v:?}");
        if s.contains('.') || s.contains('e') || s.contains("inf") {
            s
        } else {
            format!("{s}.0")
        }
    }
}

fn fmt_f32(v: f32) -> String {
    if v.is_finite() {
        let s = format!("{v:?}");
        if s.contains('.') || s.contains('e') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        fmt_f64(v as f64)
    }
}

/// True when a symbolic dim prints bare: a name that cannot read back as a number.
fn sym_is_bare(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(is_name_char)
        && !s.ends_with(':')
        && !s.chars().all(|c| c.is_ascii_digit())
}

fn fmt_dim(d: &Dim) -> String {
    match d {
        Dim::Sym(s) if !sym_is_bare(s) => quote(s.as_bytes()),
        d => d.to_string(),
    }
}

fn fmt_tensor_type(t: &TensorType) -> String {
    let dt = t.dtype.map(|d| d.name()).unwrap_or("?");
    match &t.shape {
        None => format!("{dt}[*]"),
        Some(dims) => format!(
            "{dt}[{}]",
            dims.iter().map(fmt_dim).collect::<Vec<_>>().join(",")
        ),
    }
}

/// A type as the text form writes it. It is `Type`'s `Display`, except that a symbolic dim
/// that is not a plain name (`"batch size"`, `"3"`) is quoted so that it reads back.
pub fn fmt_type(t: &Type) -> String {
    match t {
        Type::Tensor(t) => fmt_tensor_type(t),
        Type::SparseTensor(t) => format!("sparse<{}>", fmt_tensor_type(t)),
        Type::Sequence(t) => format!("seq<{}>", fmt_type(t)),
        Type::Optional(t) => format!("opt<{}>", fmt_type(t)),
        Type::Map(k, v) => format!("map<{k},{}>", fmt_type(v)),
        Type::Unknown => "?".into(),
    }
}

/// A part of an opaque op's name (`@domain::op_type`): bare unless it holds a `:`, so that
/// the `::` between domain and op type is never ambiguous.
fn fmt_op_part(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| is_name_char(c) && c != ':') {
        s.to_string()
    } else {
        quote(s.as_bytes())
    }
}

/// True when a constant prints inline (small, and of a type with a plain number syntax).
pub fn prints_inline(t: &Tensor) -> bool {
    use DType::*;
    t.len() <= INLINE_MAX_ELEMENTS
        && matches!(
            t.dtype(),
            F32 | F64 | F16 | BF16 | I8 | U8 | I16 | U16 | I32 | U32 | I64 | U64 | Bool
        )
}

/// The inline element list of a small constant: `[1, 2]`, `[0.5, 1.0]`, `[true]`.
pub fn fmt_elements(t: &Tensor) -> String {
    let items: Vec<String> = match t.dtype() {
        DType::F32 => t
            .to_f32_vec()
            .unwrap_or_default()
            .into_iter()
            .map(fmt_f32)
            .collect(),
        DType::F64 | DType::F16 | DType::BF16 => t
            .to_f64_vec()
            .unwrap_or_default()
            .into_iter()
            .map(fmt_f64)
            .collect(),
        DType::Bool => t
            .to_i64_vec()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v != 0).to_string())
            .collect(),
        DType::U64 => t
            .bytes()
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])).to_string())
            .collect(),
        _ => t
            .to_i64_vec()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
    };
    format!("[{}]", items.join(", "))
}

/// A constant's type and data: `f32[2] [1.0, 2.0]` or `f32[128,64] #9f31c2a07b44d610`.
pub fn fmt_tensor(t: &Tensor) -> String {
    let ty = TensorType::new(t.dtype(), t.dims());
    if prints_inline(t) {
        format!("{ty} {}", fmt_elements(t))
    } else {
        format!("{ty} #{:016x}", t.content_hash())
    }
}

struct Printer<'a> {
    out: String,
    names: HashMap<ValueId, String>,
    g: &'a Graph,
}

impl Printer<'_> {
    fn name(&self, v: ValueId) -> String {
        match self.names.get(&v) {
            Some(n) => format!("%{}", fmt_name(n)),
            None => format!("%{}", fmt_name(&self.g.value(v).name)),
        }
    }
}

fn fmt_attr(a: &Attr, indent: usize) -> String {
    match a {
        Attr::Int(i) => i.to_string(),
        Attr::Float(f) => fmt_f32(*f),
        Attr::Str(s) => quote(s),
        Attr::DType(d) => d.to_string(),
        Attr::Tensor(t) => format!("tensor {}", fmt_tensor(t)),
        Attr::Type(t) => format!("type {}", fmt_type(t)),
        Attr::Graph(g) => graph_text(g, indent + 1)
            .trim_start()
            .trim_end()
            .to_string(),
        Attr::Ints(v) => format!(
            "[{}]",
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Attr::Floats(v) => {
            format!(
                "floats[{}]",
                v.iter().map(|x| fmt_f32(*x)).collect::<Vec<_>>().join(", ")
            )
        }
        Attr::Strs(v) => format!(
            "strs[{}]",
            v.iter().map(|x| quote(x)).collect::<Vec<_>>().join(", ")
        ),
        Attr::Tensors(v) => {
            format!(
                "tensors[{}]",
                v.iter().map(fmt_tensor).collect::<Vec<_>>().join(", ")
            )
        }
        Attr::Types(v) => format!(
            "types[{}]",
            v.iter().map(fmt_type).collect::<Vec<_>>().join(", ")
        ),
        Attr::Graphs(v) => format!(
            "graphs[{}]",
            v.iter()
                .map(|g| graph_text(g, indent + 1).trim().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn graph_text(g: &Graph, indent: usize) -> String {
    let pad = "  ".repeat(indent);
    let mut p = Printer {
        out: String::new(),
        names: HashMap::new(),
        g,
    };
    // Values without a name that are used still need a printable one.
    let mut tmp = 0;
    let order = g.topo_order().unwrap_or_else(|_| g.node_ids());
    let used: HashSet<&str> = order
        .iter()
        .flat_map(|id| g.node(*id).outputs.iter().map(|v| v.name.as_str()))
        .collect();
    for id in &order {
        for (port, v) in g.node(*id).outputs.iter().enumerate() {
            let vid = ValueId::new(*id, port as u32);
            if v.name.is_empty() && (!g.users(vid).is_empty() || g.is_output(vid)) {
                // Skip numbers a named value already uses: the text must not define a name twice.
                while used.contains(format!("tmp{tmp}").as_str()) {
                    tmp += 1;
                }
                p.names.insert(vid, format!("tmp{tmp}"));
                tmp += 1;
            }
        }
    }
    let sig = |vs: &[ValueId], p: &Printer| {
        vs.iter()
            .map(|v| format!("{}: {}", &p.name(*v)[1..], fmt_type(g.value_type(*v))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        p.out,
        "{pad}graph {}({}) -> ({})",
        fmt_name(&g.name),
        sig(&g.inputs(), &p),
        sig(g.outputs(), &p)
    );
    if !g.captures().is_empty() {
        let _ = write!(p.out, " captures({})", sig(&g.captures(), &p));
    }
    p.out.push_str(" {\n");
    let body_pad = "  ".repeat(indent + 1);
    let (consts, rest): (Vec<_>, Vec<_>) = order
        .iter()
        .partition(|id| matches!(g.node(**id).op, Op::Const(_)));
    for id in consts.into_iter().chain(rest) {
        let n = g.node(id);
        let line = match &n.op {
            Op::Input => continue,
            Op::Const(t) => format!("{} = const {}", p.name(ValueId::new(id, 0)), fmt_tensor(t)),
            op => {
                let outs: Vec<String> = (0..n.outputs.len())
                    .map(|i| {
                        let v = ValueId::new(id, i as u32);
                        if n.outputs[i].name.is_empty() && !p.names.contains_key(&v) {
                            "_".to_string()
                        } else {
                            p.name(v)
                        }
                    })
                    .collect();
                let ins: Vec<String> = g
                    .node_inputs(id)
                    .iter()
                    .map(|v| v.map(|v| p.name(v)).unwrap_or_else(|| "_".into()))
                    .collect();
                let opname = match op {
                    Op::Opaque(o) if o.domain.is_empty() => format!("@{}", fmt_op_part(&o.op_type)),
                    Op::Opaque(o) => {
                        format!("@{}::{}", fmt_op_part(&o.domain), fmt_op_part(&o.op_type))
                    }
                    _ => op.op_type().to_string(),
                };
                let attrs = op.attrs();
                let attr_text = if attrs.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {{{}}}",
                        attrs
                            .iter()
                            .map(|(k, a)| format!("{}={}", fmt_name(k), fmt_attr(a, indent + 1)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let types: Vec<String> = n.outputs.iter().map(|v| fmt_type(&v.ty)).collect();
                format!(
                    "{} = {}({}){} : {}",
                    outs.join(", "),
                    opname,
                    ins.join(", "),
                    attr_text,
                    types.join(", ")
                )
            }
        };
        let _ = writeln!(p.out, "{body_pad}{line}");
    }
    let rets: Vec<String> = g.outputs().iter().map(|v| p.name(*v)).collect();
    let _ = writeln!(p.out, "{body_pad}return {}", rets.join(", "));
    let _ = writeln!(p.out, "{pad}}}");
    p.out
}

/// The text form of a graph.
pub fn to_text(g: &Graph) -> String {
    graph_text(g, 0)
}

/// The text form of a model: a header line with the opsets, then the graph.
pub fn model_to_text(m: &Model) -> String {
    let mut s = String::from("model");
    let _ = write!(s, " ir_version={}", m.ir_version);
    let ops: Vec<String> = m
        .opsets
        .iter()
        .map(|(d, v)| {
            format!(
                "{}={v}",
                if d.is_empty() {
                    "ai.onnx".to_string()
                } else {
                    fmt_name(d)
                }
            )
        })
        .collect();
    let _ = write!(s, " opset({})", ops.join(", "));
    s.push('\n');
    s.push_str(&to_text(&m.graph));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Value;
    use crate::{ops, Type};

    #[test]
    fn prints_the_design_example_shape() {
        let mut g = Graph::new("mlp");
        let x = g.add_input("input", Type::tensor(DType::F32, &[1, 4]));
        let w = g.add_const(
            "fc.weight",
            Tensor::from_vec(vec![3, 4], &[0.5f32; 12]).unwrap(),
        );
        let b = g.add_const(
            "fc.bias",
            Tensor::from_vec(vec![3], &[1.0f32, -2.0, 0.25]).unwrap(),
        );
        let o = Op::Gemm(ops::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        });
        let n = g
            .add_node(
                "fc",
                o,
                &[Some(x), Some(w), Some(b)],
                vec![Value {
                    name: "logits".into(),
                    ty: Type::tensor(DType::F32, &[1, 3]),
                }],
            )
            .unwrap();
        g.set_outputs(vec![ValueId::new(n, 0)]).unwrap();
        let h = Tensor::from_vec(vec![3, 4], &[0.5f32; 12])
            .unwrap()
            .content_hash();
        assert_eq!(
            to_text(&g),
            format!(
                "graph mlp(input: f32[1,4]) -> (logits: f32[1,3]) {{\n  %fc.weight = const f32[3,4] #{h:016x}\n  %fc.bias = const f32[3] [1.0, -2.0, 0.25]\n  %logits = Gemm(%input, %fc.weight, %fc.bias) {{transB=1}} : f32[1,3]\n  return %logits\n}}\n"
            )
        );
    }

    #[test]
    fn odd_names_are_quoted() {
        assert_eq!(fmt_name("onnx::Gemm_5"), "onnx::Gemm_5");
        assert_eq!(fmt_name("a b"), "\"a b\"");
        assert_eq!(fmt_name("x:"), "\"x:\"");
        assert_eq!(fmt_name(""), "\"\"");
        assert_eq!(fmt_f64(1.0), "1.0");
        assert_eq!(fmt_f32(1e-5), "1e-5");
    }
}
