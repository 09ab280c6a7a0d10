//! The text form reads back what it prints: `to_text(from_text(to_text(g))) == to_text(g)` on
//! hand-built graphs that cover every construct, with `#hash` constants coming back through
//! the blob file.

use smelt_ir::attr::Attr;
use smelt_ir::graph::Value;
use smelt_ir::text::{self, write_blob, BlobStore, NoConsts};
use smelt_ir::{DType, Dim, Graph, Model, Op, OpaqueOp, Tensor, TensorType, Type, ValueId};

fn val(name: &str, ty: Type) -> Value {
    Value {
        name: name.into(),
        ty,
    }
}

fn f32t(dims: &[usize]) -> Type {
    Type::tensor(DType::F32, dims)
}

fn op(name: &str, attrs: Vec<(&str, Attr)>) -> Op {
    Op::from_parts(
        name,
        attrs.into_iter().map(|(k, a)| (k.to_string(), a)).collect(),
    )
    .unwrap()
}

fn opaque(domain: &str, op_type: &str, attrs: Vec<(&str, Attr)>) -> Op {
    Op::Opaque(OpaqueOp {
        domain: domain.into(),
        op_type: op_type.into(),
        attrs: attrs.into_iter().map(|(k, a)| (k.to_string(), a)).collect(),
    })
}

fn node(g: &mut Graph, op: Op, ins: &[Option<ValueId>], outs: Vec<Value>) -> Vec<ValueId> {
    let n = outs.len();
    let id = g.add_node("", op, ins, outs).unwrap();
    (0..n).map(|p| ValueId::new(id, p as u32)).collect()
}

/// Prints, parses (constants from the graph itself, then from its blob file's bytes), prints
/// again and compares; returns the text.
fn check(g: &Graph) -> String {
    let t1 = g.to_text();
    let store = BlobStore::from_graph(g);
    let g2 = Graph::from_text(&t1, &store)
        .unwrap_or_else(|e| panic!("{}\n--- text:\n{t1}", e.render(&t1)));
    assert_eq!(t1, g2.to_text(), "round trip changed the text");
    let mut blob = vec![];
    write_blob(g, &mut blob).unwrap();
    let read = BlobStore::read(&blob).unwrap();
    assert_eq!(read.hashes(), store.hashes());
    let g3 = Graph::from_text(&t1, &read).unwrap();
    assert_eq!(t1, g3.to_text());
    // The parsed graph's blob is the same file.
    let mut blob2 = vec![];
    write_blob(&g3, &mut blob2).unwrap();
    assert_eq!(blob, blob2);
    t1
}

fn mlp() -> Graph {
    let mut g = Graph::new("digits_mlp");
    let x = g.add_input("input", f32t(&[1, 64]));
    let w = g.add_const(
        "fc1.weight",
        Tensor::from_vec(
            vec![16, 64],
            &(0..1024).map(|i| i as f32 * 0.25).collect::<Vec<_>>(),
        )
        .unwrap(),
    );
    let b = g.add_const(
        "fc1.bias",
        Tensor::from_vec(vec![4], &[1.0f32, -2.5, 0.0, 3.0]).unwrap(),
    );
    let h = node(
        &mut g,
        op(
            "Gemm",
            vec![("transB", Attr::Int(1)), ("alpha", Attr::Float(0.5))],
        ),
        &[Some(x), Some(w), Some(b)],
        vec![val("h1", f32t(&[1, 16]))],
    );
    let a = node(
        &mut g,
        op("Relu", vec![]),
        &[Some(h[0])],
        vec![val("a1", f32t(&[1, 16]))],
    );
    let s = node(
        &mut g,
        op("Softmax", vec![("axis", Attr::Int(1))]),
        &[Some(a[0])],
        vec![val("logits", f32t(&[1, 16]))],
    );
    g.set_outputs(vec![s[0]]).unwrap();
    g
}

#[test]
fn mlp_round_trips_and_matches_the_design_shape() {
    let t = check(&mlp());
    assert!(t.starts_with("graph digits_mlp(input: f32[1,64]) -> (logits: f32[1,16]) {\n"));
    assert!(t.contains("  %fc1.weight = const f32[16,64] #"));
    assert!(t.contains("  %fc1.bias = const f32[4] [1.0, -2.5, 0.0, 3.0]\n"));
    assert!(t.contains(
        "  %h1 = Gemm(%input, %fc1.weight, %fc1.bias) {alpha=0.5, transB=1} : f32[1,16]\n"
    ));
}

#[test]
fn inline_constants_of_every_inline_dtype() {
    let mut g = Graph::new("consts");
    let cs: Vec<(&str, Tensor)> = vec![
        (
            "f32",
            Tensor::from_vec(
                vec![2, 4],
                &[
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    -0.0,
                    1e-5,
                    3.4e38,
                    f32::MIN_POSITIVE,
                    0.1,
                ],
            )
            .unwrap(),
        ),
        (
            "f64",
            Tensor::from_vec(vec![3], &[0.1f64, -1e300, 5e-324]).unwrap(),
        ),
        (
            "f16",
            Tensor::from_vec(
                vec![3],
                &[
                    half::f16::from_f32(0.1),
                    half::f16::MAX,
                    half::f16::from_f32(-3.0),
                ],
            )
            .unwrap(),
        ),
        (
            "bf16",
            Tensor::from_vec(vec![2], &[half::bf16::from_f32(0.1), half::bf16::MIN]).unwrap(),
        ),
        (
            "i8",
            Tensor::from_vec(vec![2], &[i8::MIN, i8::MAX]).unwrap(),
        ),
        ("u8", Tensor::from_vec(vec![2], &[0u8, 255]).unwrap()),
        ("i16", Tensor::from_vec(vec![2], &[i16::MIN, 7]).unwrap()),
        ("u16", Tensor::from_vec(vec![1], &[u16::MAX]).unwrap()),
        (
            "i32",
            Tensor::from_vec(vec![2], &[i32::MIN, i32::MAX]).unwrap(),
        ),
        ("u32", Tensor::from_vec(vec![1], &[u32::MAX]).unwrap()),
        (
            "i64",
            Tensor::from_vec(vec![2], &[i64::MIN, i64::MAX]).unwrap(),
        ),
        ("u64", Tensor::from_vec(vec![2], &[u64::MAX, 0]).unwrap()),
        (
            "bool",
            Tensor::from_vec(vec![3], &[true, false, true]).unwrap(),
        ),
        ("scalar", Tensor::scalar(2.5f32)),
        ("empty", Tensor::from_vec::<f32>(vec![0, 3], &[]).unwrap()),
    ];
    let mut outs = vec![];
    for (n, t) in cs {
        outs.push(g.add_const(n, t));
    }
    g.set_outputs(outs).unwrap();
    let t = check(&g);
    assert!(t.contains("%f32 = const f32[2,4] [nan, inf, -inf, -0.0, 1e-5, 3.4e38,"));
    assert!(t.contains("%u64 = const u64[2] [18446744073709551615, 0]"));
    assert!(t.contains("%scalar = const f32[] [2.5]"));
    assert!(t.contains("%empty = const f32[0,3] []"));
}

#[test]
fn hashed_constants_of_every_kind_come_back_from_the_blob() {
    let mut g = Graph::new("hashed");
    let big = Tensor::from_vec(vec![3, 5], &[7i64; 15]).unwrap();
    let s = Tensor::from_strings(vec![2], vec![b"hello".to_vec(), vec![0xff, 0, 1]]).unwrap();
    let c = Tensor::from_bytes(DType::C64, vec![2], vec![1; 16]).unwrap();
    let i4 = Tensor::from_i64s(DType::I4, vec![3], &[1, -1, 7]).unwrap();
    let f8 = Tensor::from_bytes(DType::F8E4M3FN, vec![1], vec![0x38]).unwrap();
    let outs = vec![
        g.add_const("big", big),
        g.add_const("s", s),
        g.add_const("c", c),
        g.add_const("i4", i4),
        g.add_const("f8", f8),
    ];
    g.set_outputs(outs).unwrap();
    let t = check(&g);
    assert_eq!(t.matches(" #").count(), 5, "{t}");
    // Without the blob, each hash is an error naming its position.
    let e = Graph::from_text(&t, &NoConsts).unwrap_err();
    assert_eq!((e.line, e.column), (2, 25), "{e}");
    assert!(e.message.contains("no constant #"), "{e}");
}

#[test]
fn multi_output_absent_inputs_and_unnamed_values() {
    let mut g = Graph::new("multi");
    let x = g.add_input("x", f32t(&[6, 4]));
    // A value named like the printer's temporaries: they must skip it.
    let tmp0 = node(
        &mut g,
        op("Neg", vec![]),
        &[Some(x)],
        vec![val("tmp0", f32t(&[6, 4]))],
    );
    let sp = node(
        &mut g,
        op("Split", vec![("num_outputs", Attr::Int(3))]),
        &[Some(tmp0[0]), None],
        vec![
            val("", f32t(&[2, 4])),
            val("b", f32t(&[2, 4])),
            val("", f32t(&[2, 4])),
        ],
    );
    let k = g.add_const("k", Tensor::from_vec(vec![1], &[2i64]).unwrap());
    let tk = node(
        &mut g,
        op("TopK", vec![]),
        &[Some(sp[0]), Some(k)],
        vec![
            val("vals", f32t(&[2, 2])),
            val("idx", Type::tensor(DType::I64, &[2, 2])),
        ],
    );
    let hi = g.add_const("hi", Tensor::scalar(6.0f32));
    let cl = node(
        &mut g,
        op("Clip", vec![]),
        &[Some(sp[1]), None, Some(hi)],
        vec![val("", f32t(&[2, 4]))],
    );
    let dr = node(
        &mut g,
        op("Dropout", vec![]),
        &[Some(cl[0])],
        vec![
            val("d", f32t(&[2, 4])),
            val("", Type::tensor(DType::Bool, &[2, 4])),
        ],
    );
    g.set_outputs(vec![tk[0], tk[1], dr[0], sp[1], sp[1], x])
        .unwrap();
    let t = check(&g);
    assert!(
        t.contains("%tmp1, %b, _ = Split(%tmp0, _) {num_outputs=3}"),
        "{t}"
    );
    assert!(t.contains("%tmp2 = Clip(%b, _, %hi)"), "{t}");
    assert!(t.contains("%d, _ = Dropout(%tmp2)"), "{t}");
    assert!(t.contains("return %vals, %idx, %d, %b, %b, %x\n"), "{t}");
}

#[test]
fn odd_names_are_quoted_and_read_back() {
    let names = [
        "a b",
        "x:",
        "onnx::Gemm_5",
        ":lead",
        "-1",
        "_",
        "quote\"back\\slash",
        "new\nline\ttab\u{1}",
        "ünïcödé",
        "return",
        "const",
        "graph",
        "123",
        "1.5e-3",
        "nan",
    ];
    let mut g = Graph::new("weird name");
    let x = g.add_input("", f32t(&[1]));
    let mut prev = g.add_input("in put", f32t(&[1]));
    for n in names {
        prev = node(
            &mut g,
            op("Relu", vec![]),
            &[Some(prev)],
            vec![val(n, f32t(&[1]))],
        )[0];
    }
    g.set_outputs(vec![prev, x]).unwrap();
    let t = check(&g);
    assert!(t.contains("%\"x:\" = Relu(%\"a b\")"), "{t}");
    assert!(t.contains("%\"new\\nline\\ttab\\x01\""), "{t}");
    assert!(
        t.starts_with("graph \"weird name\"(tmp0: f32[1], \"in put\": f32[1])"),
        "{t}"
    );
}

#[test]
fn every_type_form() {
    let types = vec![
        Type::Unknown,
        Type::Tensor(TensorType {
            dtype: None,
            shape: None,
        }),
        Type::Tensor(TensorType {
            dtype: Some(DType::F32),
            shape: None,
        }),
        Type::Tensor(TensorType {
            dtype: None,
            shape: Some(vec![Dim::Known(2), Dim::Unknown]),
        }),
        Type::Tensor(TensorType {
            dtype: Some(DType::F16),
            shape: Some(vec![
                Dim::Sym("batch".into()),
                Dim::Sym("batch size".into()),
                Dim::Sym("3".into()),
                Dim::Sym("".into()),
                Dim::Sym("?".into()),
                Dim::Sym("n-1".into()),
                Dim::Known(u64::MAX),
            ]),
        }),
        Type::Tensor(TensorType {
            dtype: Some(DType::Bool),
            shape: Some(vec![]),
        }),
        Type::Sequence(Box::new(Type::Optional(Box::new(f32t(&[2]))))),
        Type::Map(
            DType::I64,
            Box::new(Type::Sequence(Box::new(Type::Unknown))),
        ),
        Type::SparseTensor(TensorType::new(DType::F32, &[3, 3])),
        Type::Optional(Box::new(Type::Map(
            DType::String,
            Box::new(Type::tensor(DType::F64, &[1])),
        ))),
    ];
    let mut g = Graph::new("types");
    let mut outs = vec![];
    for (i, t) in types.iter().enumerate() {
        let x = g.add_input(format!("x{i}"), t.clone());
        outs.extend(node(
            &mut g,
            opaque("", "Pass", vec![("types", Attr::Types(types.clone()))]),
            &[Some(x)],
            vec![val(&format!("y{i}"), t.clone())],
        ));
    }
    g.set_outputs(outs).unwrap();
    let t = check(&g);
    assert!(
        t.contains("f16[batch,\"batch size\",\"3\",\"\",\"?\",n-1,18446744073709551615]"),
        "{t}"
    );
    for ty in &types {
        let s = text::fmt_type(ty);
        assert_eq!(&text::parse_type(&s).unwrap(), ty, "{s}");
    }
}

fn branch(name: &str, cap: &str, op_name: &str) -> Graph {
    let mut b = Graph::new(name);
    let c = b.add_capture(cap, f32t(&[2]));
    let y = node(
        &mut b,
        op(op_name, vec![]),
        &[Some(c)],
        vec![val(&format!("{name}_out"), f32t(&[2]))],
    );
    b.set_outputs(vec![y[0]]).unwrap();
    b
}

#[test]
fn subgraphs_with_captures_and_every_attribute_kind() {
    let mut g = Graph::new("control");
    let cond = g.add_input("cond", Type::tensor(DType::Bool, &[]));
    let x = g.add_input("x", f32t(&[2]));
    let iff = node(
        &mut g,
        Op::from_parts(
            "If",
            vec![
                (
                    "then_branch".into(),
                    Attr::Graph(Box::new(branch("then", "x_in", "Relu"))),
                ),
                (
                    "else_branch".into(),
                    Attr::Graph(Box::new(branch("else", "x_in", "Neg"))),
                ),
            ],
        )
        .unwrap(),
        &[Some(cond), Some(x)],
        vec![val("r", f32t(&[2]))],
    );
    // A loop body with a nested If inside.
    let mut body = Graph::new("body");
    let i = body.add_input("i", Type::tensor(DType::I64, &[]));
    let c = body.add_input("c_in", Type::tensor(DType::Bool, &[]));
    let acc = body.add_input("acc", f32t(&[2]));
    let cap = body.add_capture("r_cap", f32t(&[2]));
    let sum = node(
        &mut body,
        op("Add", vec![]),
        &[Some(acc), Some(cap)],
        vec![val("acc_next", f32t(&[2]))],
    );
    let inner = node(
        &mut body,
        Op::from_parts(
            "If",
            vec![
                (
                    "then_branch".into(),
                    Attr::Graph(Box::new(branch("t2", "s", "Relu"))),
                ),
                (
                    "else_branch".into(),
                    Attr::Graph(Box::new(branch("e2", "s", "Abs"))),
                ),
            ],
        )
        .unwrap(),
        &[Some(c), Some(sum[0])],
        vec![val("inner", f32t(&[2]))],
    );
    body.set_outputs(vec![c, inner[0]]).unwrap();
    let _ = i;
    let trip = g.add_const("trip", Tensor::scalar(3i64));
    let lp = node(
        &mut g,
        op("Loop", vec![("body", Attr::Graph(Box::new(body)))]),
        &[Some(trip), Some(cond), Some(x), Some(iff[0])],
        vec![val("looped", f32t(&[2]))],
    );
    // An opaque op with one attribute of every kind.
    let big = Tensor::from_vec(vec![10], &[1.5f32; 10]).unwrap();
    let small = Tensor::from_vec(vec![2], &[1i32, 2]).unwrap();
    let all = opaque(
        "com.example",
        "Everything",
        vec![
            ("i", Attr::Int(-7)),
            ("f", Attr::Float(f32::NAN)),
            ("f2", Attr::Float(1e-5)),
            ("s", Attr::Str(vec![b'o', b'k', 0xff, b'"'])),
            ("t", Attr::Tensor(big.clone())),
            ("t2", Attr::Tensor(small.clone())),
            ("g", Attr::Graph(Box::new(branch("og", "z", "Sigmoid")))),
            ("ty", Attr::Type(Type::Sequence(Box::new(f32t(&[1]))))),
            ("is", Attr::Ints(vec![1, -2, i64::MAX])),
            ("empty", Attr::Ints(vec![])),
            ("fs", Attr::Floats(vec![0.5, f32::INFINITY, -0.0])),
            ("nofs", Attr::Floats(vec![])),
            ("ss", Attr::Strs(vec![b"a".to_vec(), b"".to_vec()])),
            ("ts", Attr::Tensors(vec![big, small])),
            (
                "gs",
                Attr::Graphs(vec![branch("g1", "z", "Exp"), branch("g2", "z", "Log")]),
            ),
            ("tys", Attr::Types(vec![Type::Unknown, f32t(&[])])),
            ("dt", Attr::DType(DType::BF16)),
            ("quoted name", Attr::Int(1)),
        ],
    );
    let e = node(
        &mut g,
        all,
        &[Some(lp[0]), None, Some(x)],
        vec![val("e1", Type::Unknown), val("", Type::Unknown)],
    );
    // Typed ops with non-int attributes.
    let cast = node(
        &mut g,
        op("Cast", vec![("to", Attr::DType(DType::F16))]),
        &[Some(x)],
        vec![val("half", Type::tensor(DType::F16, &[2]))],
    );
    let shape = g.add_const("shape", Tensor::from_vec(vec![1], &[3i64]).unwrap());
    let cos = node(
        &mut g,
        op(
            "ConstantOfShape",
            vec![(
                "value",
                Attr::Tensor(Tensor::from_vec(vec![1], &[0.5f32]).unwrap()),
            )],
        ),
        &[Some(shape)],
        vec![val("filled", f32t(&[3]))],
    );
    let gelu = node(
        &mut g,
        op("Gelu", vec![("approximate", Attr::Str(b"tanh".to_vec()))]),
        &[Some(x)],
        vec![val("gelu", f32t(&[2]))],
    );
    // Opaque ops whose names need quotes, and an op with no outputs at all.
    let q = node(
        &mut g,
        opaque("my::domain", "Op:Type", vec![]),
        &[Some(x)],
        vec![val("q", Type::Unknown)],
    );
    let r = node(
        &mut g,
        opaque("", "Relu", vec![]),
        &[Some(q[0])],
        vec![val("opaque_relu", Type::Unknown)],
    );
    node(&mut g, opaque("", "Sink", vec![]), &[Some(r[0])], vec![]);
    g.set_outputs(vec![e[0], cast[0], cos[0], gelu[0], r[0]])
        .unwrap();
    let t = check(&g);
    assert!(t.contains("captures(x_in: f32[2])"), "{t}");
    assert!(t.contains("= @\"my::domain\"::\"Op:Type\"(%x) : ?"), "{t}");
    assert!(t.contains("%opaque_relu = @Relu(%q)"), "{t}");
    assert!(
        t.contains("\n   = @Sink(%opaque_relu) : \n") || t.contains("  = @Sink(%opaque_relu) : \n"),
        "{t}"
    );
    assert!(t.contains("{to=f16}"), "{t}");
    assert!(t.contains("s=\"ok\\xff\\\"\""), "{t}");
    let g2 = Graph::from_text(&t, &BlobStore::from_graph(&g)).unwrap();
    smelt_ir::verify(&g2).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn empty_graph_and_model_header() {
    let g = Graph::new("empty");
    assert_eq!(check(&g), "graph empty() -> () {\n  return \n}\n");
    let mut m = Model::new(mlp(), 13);
    m.ir_version = 7;
    m.opsets.push(("com.microsoft".into(), 1));
    m.opsets.push(("odd domain".into(), 2));
    let t = m.to_text();
    assert!(
        t.starts_with("model ir_version=7 opset(ai.onnx=13, com.microsoft=1, \"odd domain\"=2)\n")
    );
    let m2 = Model::from_text(&t, &BlobStore::from_graph(&m.graph)).unwrap();
    assert_eq!(m2.to_text(), t);
    assert_eq!(m2.opset(), 13);
    assert_eq!(m2.ir_version, 7);
    // Without a header line, a model gets the default opset.
    let m3 = Model::from_text(&m.graph.to_text(), &BlobStore::from_graph(&m.graph)).unwrap();
    assert_eq!(m3.opset(), text::DEFAULT_OPSET);
}

#[test]
fn hand_written_text_with_inline_random_and_comments() {
    let src = "; a test graph needs no ONNX file
graph t(x: f32[2,2]) -> (y: f32[2,2]) {
  %w = const f32[2,2] [1, 2, 3, 4]       ; ints are fine for floats
  %r = const f32[2,2] random(seed=0)
  %s = const string[2] [\"a\", \"b\\n\"]
  %q = const i4[3] [1, -8, 7]
  %m = MatMul(%x, %w)
  %y = Add(%m, %r)
  return %y
}
";
    let g = Graph::from_text(src, &NoConsts).unwrap();
    let w = g.values_by_name()["w"];
    assert_eq!(
        g.const_value(w).unwrap().to_f32_vec().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
    let r = g.values_by_name()["r"];
    // The f32 values, widened exactly to f64.
    assert_eq!(
        g.const_value(r).unwrap().to_f64_vec().unwrap(),
        vec![
            0.7666215896606445,
            -0.13694405555725098,
            -0.9471324682235718,
            0.9417638778686523
        ]
    );
    let s = g.values_by_name()["s"];
    assert_eq!(
        g.const_value(s).unwrap().strings().unwrap(),
        &[b"a".to_vec(), b"b\n".to_vec()]
    );
    // Types left out are unknown until inference fills them in.
    let y = g.outputs()[0];
    assert_eq!(
        g.value_type(y),
        &f32t(&[2, 2]),
        "the signature gives the output type"
    );
    let m = g.values_by_name()["m"];
    assert_eq!(g.value_type(m), &Type::Unknown);
    let mut g = g;
    smelt_ir::infer::infer_graph(&mut g).unwrap();
    assert_eq!(g.value_type(m), &f32t(&[2, 2]));
    smelt_ir::verify(&g).unwrap();
    // The printed form round-trips through the blob.
    check(&g);
}

/// SplitMix64 computed independently (Python, from the documented algorithm) for seed 0:
/// e220a8397b1dcdaf, 6e789e6aa1b965f4, 06c45d188009454f, f88bb8a8724c81ec.
#[test]
fn random_is_the_documented_generator() {
    let get = |src: &str| text::parse_tensor(src, &NoConsts).unwrap();
    assert_eq!(
        get("f64[4] random(seed=0)").to_f64_vec().unwrap(),
        vec![
            0.7666216164272852,
            -0.13694400590298006,
            -0.9471324568148045,
            0.941763956307657
        ]
    );
    assert_eq!(
        get("f16[4] random(seed=0)").to_f64_vec().unwrap(),
        vec![0.7666015625, -0.1376953125, -0.947265625, 0.94140625]
    );
    assert_eq!(
        get("bf16[4] random(seed=0)").to_f64_vec().unwrap(),
        vec![0.765625, -0.140625, -0.953125, 0.9375]
    );
    assert_eq!(
        get("i8[4] random(seed=0)").to_i64_vec().unwrap(),
        vec![6, -2, -8, 7]
    );
    assert_eq!(
        get("u16[4] random(seed=0)").to_i64_vec().unwrap(),
        vec![14, 6, 0, 15]
    );
    assert_eq!(
        get("bool[4] random(seed=0)").to_i64_vec().unwrap(),
        vec![1, 0, 0, 1]
    );
    assert_eq!(
        get("f32[3] random(seed=42)").to_f64_vec().unwrap(),
        vec![
            0.48312973976135254,
            -0.680179238319397,
            -0.44279778003692627
        ]
    );
    // Same text, same bytes; another seed, other bytes; row-major over the whole shape.
    let a = get("f32[8,8] random(seed=3)");
    assert_eq!(a, get("f32[8,8] random(seed=3)"));
    assert_ne!(a, get("f32[8,8] random(seed=4)"));
    assert_eq!(
        a.to_f32_vec().unwrap(),
        get("f32[64] random(seed=3)").to_f32_vec().unwrap()
    );
    let all = a.to_f32_vec().unwrap();
    assert!(all.iter().all(|v| (-1.0..1.0).contains(v)));
    let e = text::parse_tensor("c64[2] random(seed=1)", &NoConsts).unwrap_err();
    assert!(e.message.contains("does not support dtype c64"), "{e}");
    let e = text::parse_tensor("f32[100000,100000] random(seed=1)", &NoConsts).unwrap_err();
    assert!(e.message.contains("limited to"), "{e}");
}

/// The examples of docs/ir.md, put together, parse, verify after inference and round-trip.
#[test]
fn docs_examples_parse() {
    let src = r#"model ir_version=8 opset(ai.onnx=17, com.microsoft=1)
graph g(x: f32[4,4], cond: bool[], hi: f32[]) -> (y: f32[4,4], r: f32[4], d: f16[2,4]) {
  %w = const f32[2,2] [1, 2, 3, 4]           ; ints are accepted for float dtypes
  %b = const bool[2] [true, false]
  %s = const string[2] ["a", "b\n"]          ; parser only: the printer hashes strings
  %rnd = const f32[128,64] random(seed=3)
  %v = const f32[4] [1.0, 2.0, 3.0, 4.0]
  %a, %b2, _ = Split(%x, _) {axis=0, num_outputs=3}
  %c = Clip(%a, _, %hi) : f32[2,4]
  %d = Cast(%c) {to=f16} : f16[2,4]
  %y = Relu(%x)                               ; no types: unknown until inference
   = @Sink(%y) :                              ; an op without outputs
  %r = If(%cond, %v) {else_branch=graph else() -> (o: f32[4]) captures(x_in: f32[4]) {
      %o = Neg(%x_in) : f32[4]
      return %o
    }, then_branch=graph then() -> (p: f32[4]) captures(x_in: f32[4]) {
      %p = Relu(%x_in) : f32[4]
      return %p
    }} : f32[4]
  return %y, %r, %d
}
"#;
    let m = Model::from_text(src, &NoConsts).unwrap_or_else(|e| panic!("{}", e.render(src)));
    let mut g = m.graph.clone();
    smelt_ir::infer::infer_graph(&mut g).unwrap();
    let b = g.values_by_name()["b2"];
    assert_ne!(g.value_type(b), &Type::Unknown, "inference typed the split");
    let t = m.to_text();
    let m2 = Model::from_text(&t, &BlobStore::from_graph(&m.graph)).unwrap();
    assert_eq!(m2.to_text(), t);
}
