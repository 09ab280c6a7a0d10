//! Refusals: unsupported nodes are all listed at once (and `check` agrees), inputs are checked
//! before native code runs, symbolic dims bind from the given shapes or stop compilation with
//! the value named.

mod common;
use common::*;
use smelt_codegen::jit::{compile, Options, TensorView};
use smelt_codegen::{check, CodegenError};
use smelt_ir::ops::{self, OpaqueOp};
use smelt_ir::{DType, Dim, Op, TensorType, Type};

#[test]
fn every_unsupported_node_is_listed_and_check_agrees() {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[4]);
    let a = g.node(
        Op::Opaque(OpaqueOp {
            domain: "com.example".into(),
            op_type: "Frobnicate".into(),
            attrs: vec![],
        }),
        &[x],
    );
    let r = g.node(Op::Relu(ops::Relu {}), &[x]);
    let z = g.input("z", DType::F64, &[4]);
    let b = g.node(Op::Sigmoid(ops::Sigmoid {}), &[z]);
    let _ = r;
    let mut gr = g.g;
    // The opaque op's output type is declared, as an importer would.
    gr.set_value_type(a, Type::tensor(DType::F32, &[4]));
    gr.set_outputs(vec![a, b]).unwrap();
    smelt_ir::infer::infer_graph(&mut gr).unwrap();
    let listed = check(&gr);
    let names: Vec<(&str, &str)> = listed
        .iter()
        .map(|u| (u.node.as_str(), u.op.as_str()))
        .collect();
    assert_eq!(names, vec![("n1", "Frobnicate"), ("n3", "Sigmoid")]);
    match compile(&gr, &Options::default()) {
        Err(CodegenError::Unsupported { nodes }) => {
            let got: Vec<(String, String)> = nodes
                .iter()
                .map(|(n, o, _)| (n.clone(), o.clone()))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("n1".to_string(), "Frobnicate".to_string()),
                    ("n3".to_string(), "Sigmoid".to_string())
                ]
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("compiled an unsupported graph"),
    }
}

#[test]
fn wrong_inputs_are_refused_before_running() {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[2, 3]);
    let y = g.node(Op::Relu(ops::Relu {}), &[x]);
    let gr = g.finish(&[y]);
    let mut m = compile(&gr, &Options::default()).unwrap();
    let bad_shape = t32(&[3, 2], &[0.0; 6]);
    let e = m.run(&[TensorView::from(&bad_shape)]).unwrap_err();
    assert!(matches!(e, CodegenError::BadInput { index: 0, .. }), "{e}");
    assert!(e.to_string().contains("f32[2,3]"), "{e}");
    let bad_type = smelt_ir::Tensor::from_vec(vec![2, 3], &[0i32; 6]).unwrap();
    assert!(m.run(&[TensorView::from(&bad_type)]).is_err());
    let short = TensorView {
        dtype: DType::F32,
        dims: &[2, 3],
        data: &[0u8; 20],
    };
    assert!(m.run(&[short]).is_err());
    assert!(m.run(&[]).is_err());
    // run_into: wrong output size is refused; the right one works without allocating.
    let ok = t32(&[2, 3], &[-1.0, 2.0, -3.0, 4.0, -5.0, 6.0]);
    let mut small = [0u8; 8];
    assert!(m
        .run_into(&[TensorView::from(&ok)], &mut [&mut small[..]])
        .is_err());
    let mut buf = [0u8; 24];
    m.run_into(&[TensorView::from(&ok)], &mut [&mut buf[..]])
        .unwrap();
    let vals: Vec<f32> = buf
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(vals, vec![0.0, 2.0, 0.0, 4.0, 0.0, 6.0]);
}

fn symbolic_graph() -> smelt_ir::Graph {
    let mut g = smelt_ir::Graph::new("sym");
    let x = g.add_input(
        "x",
        Type::Tensor(TensorType {
            dtype: Some(DType::F32),
            shape: Some(vec![Dim::Sym("batch".into()), Dim::Known(3)]),
        }),
    );
    let id = g
        .add_node(
            "r",
            Op::Relu(ops::Relu {}),
            &[Some(x)],
            vec![smelt_ir::Value {
                name: "y".into(),
                ty: Type::Unknown,
            }],
        )
        .unwrap();
    g.set_outputs(vec![smelt_ir::ValueId::new(id, 0)]).unwrap();
    smelt_ir::infer::infer_graph(&mut g).unwrap();
    g
}

#[test]
fn symbolic_dims_bind_or_name_the_value() {
    let g = symbolic_graph();
    match compile(&g, &Options::default()) {
        Err(CodegenError::UnboundShape { value, .. }) => assert_eq!(value, "x"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("compiled with an unbound dim"),
    }
    let opts = Options {
        input_shapes: vec![("x".into(), vec![2, 3])],
        ..Options::default()
    };
    let mut m = compile(&g, &opts).unwrap();
    assert_eq!(m.outputs()[0].dims, vec![2, 3]);
    let x = t32(&[2, 3], &[-1.0, 1.0, -2.0, 2.0, -3.0, 3.0]);
    let out = m.run(&[TensorView::from(&x)]).unwrap();
    assert_eq!(f32s(&out[0]), vec![0.0, 1.0, 0.0, 2.0, 0.0, 3.0]);
    // A shape that contradicts a known extent, or an unknown input name, is refused.
    let bad = Options {
        input_shapes: vec![("x".into(), vec![2, 4])],
        ..Options::default()
    };
    assert!(matches!(compile(&g, &bad), Err(CodegenError::Bind(_))));
    let bad = Options {
        input_shapes: vec![("nope".into(), vec![2, 3])],
        ..Options::default()
    };
    assert!(matches!(compile(&g, &bad), Err(CodegenError::Bind(_))));
}

#[test]
fn shape_subgraphs_fold_once_inputs_are_bound() {
    // x: [batch, 3, 4] -> Reshape(x, Concat(Gather(Shape(x), 0), [-1])) -> [batch, 12]
    let mut g = smelt_ir::Graph::new("dyn");
    let x = g.add_input(
        "x",
        Type::Tensor(TensorType {
            dtype: Some(DType::F32),
            shape: Some(vec![Dim::Sym("batch".into()), Dim::Known(3), Dim::Known(4)]),
        }),
    );
    let mut n = 0;
    let mut node = |g: &mut smelt_ir::Graph, op: Op, ins: &[Option<smelt_ir::ValueId>]| {
        n += 1;
        let id = g
            .add_node(
                format!("n{n}"),
                op,
                ins,
                vec![smelt_ir::Value {
                    name: format!("v{n}"),
                    ty: Type::Unknown,
                }],
            )
            .unwrap();
        smelt_ir::ValueId::new(id, 0)
    };
    let sh = node(
        &mut g,
        Op::Shape(ops::Shape {
            start: 0,
            end: None,
        }),
        &[Some(x)],
    );
    let zero = g.add_const(
        "zero",
        smelt_ir::Tensor::from_vec(vec![1], &[0i64]).unwrap(),
    );
    let b = node(
        &mut g,
        Op::Gather(ops::Gather { axis: 0 }),
        &[Some(sh), Some(zero)],
    );
    let m1 = g.add_const("m1", smelt_ir::Tensor::from_vec(vec![1], &[-1i64]).unwrap());
    let cat = node(
        &mut g,
        Op::Concat(ops::Concat { axis: 0 }),
        &[Some(b), Some(m1)],
    );
    let r = node(
        &mut g,
        Op::Reshape(ops::Reshape { allowzero: 0 }),
        &[Some(x), Some(cat)],
    );
    let y = node(&mut g, Op::Relu(ops::Relu {}), &[Some(r)]);
    g.set_outputs(vec![y]).unwrap();
    smelt_ir::infer::infer_graph(&mut g).unwrap();
    let opts = Options {
        input_shapes: vec![("x".into(), vec![2, 3, 4])],
        ..Options::default()
    };
    let mut m = compile(&g, &opts).unwrap();
    assert_eq!(m.outputs()[0].dims, vec![2, 12]);
    let xv: Vec<f32> = (0..24).map(|i| i as f32 - 12.0).collect();
    let xt = t32(&[2, 3, 4], &xv);
    let out = m.run(&[TensorView::from(&xt)]).unwrap();
    assert_eq!(
        f32s(&out[0]),
        xv.iter().map(|v| v.max(0.0)).collect::<Vec<_>>()
    );
}

#[test]
fn inputs_frozen_to_constants_fold_and_leave_the_signature() {
    // ReduceSum(x, axes) with the axes given as an input: frozen at compile time.
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[2, 3]);
    let axes = g.input("axes", DType::I64, &[1]);
    let y = g.node(
        Op::ReduceSum(ops::ReduceSum {
            keepdims: 0,
            noop_with_empty_axes: 0,
        }),
        &[x, axes],
    );
    let gr = g.finish(&[y]);
    assert!(compile(&gr, &Options::default()).is_err());
    let opts = Options {
        const_inputs: vec![(
            "axes".into(),
            smelt_ir::Tensor::from_vec(vec![1], &[1i64]).unwrap(),
        )],
        ..Options::default()
    };
    let mut m = compile(&gr, &opts).unwrap();
    assert_eq!(m.inputs().len(), 1);
    let xt = t32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let out = m.run(&[TensorView::from(&xt)]).unwrap();
    assert_eq!(f32s(&out[0]), vec![6.0, 15.0]);
    // A value that does not fit the input is refused.
    let bad = Options {
        const_inputs: vec![(
            "axes".into(),
            smelt_ir::Tensor::from_vec(vec![2], &[0i64, 1]).unwrap(),
        )],
        ..Options::default()
    };
    assert!(matches!(compile(&gr, &bad), Err(CodegenError::Bind(_))));
}

/// A model whose bound shapes need more memory than can exist (a 2^30 x 2^30 fill) is refused
/// with an error naming the arena, not an allocation abort.
#[test]
fn an_impossible_arena_is_an_error_not_an_abort() {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[1]);
    let shape = g.ci64(&[1 << 30, 1 << 30]);
    let fill = g.node(
        Op::ConstantOfShape(ops::ConstantOfShape { value: None }),
        &[shape],
    );
    let sum = g.node(Op::Add(ops::Add {}), &[x, fill]);
    // Reduced to one number, so the huge tensor is an intermediate (in the arena).
    let y = g.node(
        Op::ReduceMax(ops::ReduceMax {
            keepdims: 0,
            noop_with_empty_axes: 0,
        }),
        &[sum],
    );
    let gr = g.finish(&[y]);
    match compile(&gr, &Options::default()) {
        Err(CodegenError::Alloc { what, .. }) => assert!(what.contains("arena"), "{what}"),
        Err(e) => panic!("expected an allocation error, got {e}"),
        Ok(cm) => panic!(
            "a 4 EiB model compiled: arena {} bytes\n{}",
            cm.plan().arena_bytes,
            cm.plan()
        ),
    }
}
