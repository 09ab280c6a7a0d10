//! `If` with a run-time condition: both branches lowered, the taken one runs.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{infer, DType, Graph, Op, Tensor, Type, Value, ValueId};

fn branch(name: &str, add: bool) -> Graph {
    let mut b = Graph::new(name);
    let x = b.add_capture(format!("{name}_x"), Type::tensor(DType::F32, &[5]));
    let y = b.add_capture(format!("{name}_y"), Type::tensor(DType::F32, &[5]));
    let c = b.add_const(
        format!("{name}_c"),
        Tensor::from_vec(vec![1], &[10.0f32]).unwrap(),
    );
    let op = if add {
        Op::Add(ops::Add {})
    } else {
        Op::Mul(ops::Mul {})
    };
    let t = b
        .add_node(
            format!("{name}_n1"),
            op,
            &[Some(x), Some(y)],
            vec![Value {
                name: format!("{name}_t"),
                ty: Type::Unknown,
            }],
        )
        .unwrap();
    let u = b
        .add_node(
            format!("{name}_n2"),
            Op::Add(ops::Add {}),
            &[Some(ValueId::new(t, 0)), Some(c)],
            vec![Value {
                name: format!("{name}_out"),
                ty: Type::Unknown,
            }],
        )
        .unwrap();
    b.set_outputs(vec![ValueId::new(u, 0)]).unwrap();
    b
}

#[test]
fn if_runs_the_branch_the_condition_picks() {
    let mut g = G::new();
    let cond = g.input("cond", DType::Bool, &[]);
    let x = g.input("x", DType::F32, &[5]);
    let y = g.input("y", DType::F32, &[5]);
    let r = g.node(Op::Relu(ops::Relu {}), &[x]);
    let out = g.node_n(
        Op::If(ops::If {
            else_branch: Box::new(branch("else", false)),
            then_branch: Box::new(branch("then", true)),
        }),
        &[Some(cond), Some(r), Some(y)],
        1,
    )[0];
    let z = g.node(Op::Neg(ops::Neg {}), &[out]);
    let mut gr = g.g;
    gr.set_outputs(vec![z]).unwrap();
    infer::infer_graph(&mut gr).unwrap();
    let xv = [-1.0f32, 2.0, -3.0, 4.0, 5.0];
    let yv = [0.5f32, 1.5, 2.5, 3.5, 4.5];
    for c in [true, false] {
        let out = run(&gr, &[Tensor::scalar(c), t32(&[5], &xv), t32(&[5], &yv)]);
        let want: Vec<f32> = xv
            .iter()
            .zip(&yv)
            .map(|(a, b)| {
                let a = a.max(0.0);
                -(if c { a + b } else { a * b } + 10.0)
            })
            .collect();
        assert_eq!(f32s(&out[0]), want, "cond = {c}");
    }
}

fn node(b: &mut Graph, name: &str, op: Op, ins: &[ValueId]) -> ValueId {
    let ins: Vec<Option<ValueId>> = ins.iter().map(|v| Some(*v)).collect();
    let id = b
        .add_node(
            format!("{name}_node"),
            op,
            &ins,
            vec![Value {
                name: name.into(),
                ty: Type::Unknown,
            }],
        )
        .unwrap();
    ValueId::new(id, 0)
}

#[test]
fn loop_with_trip_count_carries_state_and_stacks_scan_outputs() {
    // body(i, cond, acc, x) = (cond, acc + x * float(i), x, 2 * (acc + x * float(i)))
    // (x is carried unchanged rather than captured: smelt-ir's Loop inference counts captures
    // as carried values.)
    let mut body = Graph::new("body");
    let i = body.add_input("i", Type::tensor(DType::I64, &[]));
    let cond = body.add_input("cond_in", Type::tensor(DType::Bool, &[]));
    let acc = body.add_input("acc", Type::tensor(DType::F32, &[3]));
    let x = body.add_input("x_in", Type::tensor(DType::F32, &[3]));
    let fi = node(
        &mut body,
        "fi",
        Op::Cast(ops::Cast {
            to: DType::F32,
            saturate: 1,
        }),
        &[i],
    );
    let xi = node(&mut body, "xi", Op::Mul(ops::Mul {}), &[x, fi]);
    let next = node(&mut body, "acc_next", Op::Add(ops::Add {}), &[acc, xi]);
    let two = body.add_const("two", Tensor::scalar(2.0f32));
    let scan = node(&mut body, "scan", Op::Mul(ops::Mul {}), &[next, two]);
    body.set_outputs(vec![cond, next, x, scan]).unwrap();

    let mut g = G::new();
    let xin = g.input("x", DType::F32, &[3]);
    let init = g.input("init", DType::F32, &[3]);
    let m = g.konst(Tensor::scalar(4i64));
    let outs = g.node_n(
        Op::Loop(ops::Loop {
            body: Box::new(body),
        }),
        &[Some(m), None, Some(init), Some(xin)],
        3,
    );
    let gr = g.finish(&outs);
    let xv = [1.0f32, -2.0, 0.5];
    let iv = [10.0f32, 20.0, 30.0];
    let out = run(&gr, &[t32(&[3], &xv), t32(&[3], &iv)]);
    let mut acc = iv.to_vec();
    let mut scans = vec![];
    for t in 0..4 {
        for j in 0..3 {
            acc[j] += xv[j] * t as f32;
        }
        scans.extend(acc.iter().map(|v| v * 2.0));
    }
    assert_eq!(f32s(&out[0]), acc);
    assert_eq!(f32s(&out[1]), xv);
    assert_eq!(out[2].dims(), &[4, 3]);
    assert_eq!(f32s(&out[2]), scans);
}

#[test]
fn loop_stops_when_the_condition_turns_false() {
    // body(i, cond, acc) = (acc + 1 < 5, acc + 1)
    let mut body = Graph::new("body2");
    let _i = body.add_input("i2", Type::tensor(DType::I64, &[]));
    let _cond = body.add_input("cond2", Type::tensor(DType::Bool, &[]));
    let acc = body.add_input("acc2", Type::tensor(DType::F32, &[]));
    let one = body.add_const("one", Tensor::scalar(1.0f32));
    let five = body.add_const("five", Tensor::scalar(5.0f32));
    let next = node(&mut body, "acc2_next", Op::Add(ops::Add {}), &[acc, one]);
    let c = node(&mut body, "cont", Op::Less(ops::Less {}), &[next, five]);
    body.set_outputs(vec![c, next]).unwrap();
    let mut g = G::new();
    let init = g.input("init", DType::F32, &[]);
    let t = g.konst(Tensor::scalar(true));
    let outs = g.node_n(
        Op::Loop(ops::Loop {
            body: Box::new(body),
        }),
        &[None, Some(t), Some(init)],
        1,
    );
    let gr = g.finish(&outs);
    let out = run(&gr, &[Tensor::scalar(0.5f32)]);
    assert_eq!(f32s(&out[0]), vec![5.5]);
    let out = run(&gr, &[Tensor::scalar(9.0f32)]);
    // The body runs once before the condition is checked again.
    assert_eq!(f32s(&out[0]), vec![10.0]);
}

#[test]
fn loop_with_a_captured_value_is_right_or_refused() {
    // Older smelt-ir Loop inference counted captures as carried values and mistyped the scan
    // output; the backend must then refuse rather than write past it, and be right otherwise.
    let mut body = Graph::new("body3");
    let _i = body.add_input("i3", Type::tensor(DType::I64, &[]));
    let cond = body.add_input("cond3", Type::tensor(DType::Bool, &[]));
    let acc = body.add_input("acc3", Type::tensor(DType::F32, &[3]));
    let x = body.add_capture("x3_cap", Type::tensor(DType::F32, &[3]));
    let next = node(&mut body, "acc3_next", Op::Add(ops::Add {}), &[acc, x]);
    let scan = node(&mut body, "scan3", Op::Neg(ops::Neg {}), &[next]);
    body.set_outputs(vec![cond, next, scan]).unwrap();
    let mut g = G::new();
    let xin = g.input("x", DType::F32, &[3]);
    let init = g.input("init", DType::F32, &[3]);
    let m = g.konst(Tensor::scalar(4i64));
    let outs = g.node_n(
        Op::Loop(ops::Loop {
            body: Box::new(body),
        }),
        &[Some(m), None, Some(init), Some(xin)],
        2,
    );
    let gr = g.finish(&outs);
    let Ok(mut model) = smelt_codegen::jit::compile(&gr, &smelt_codegen::jit::Options::default())
    else {
        return;
    };
    let xv = t32(&[3], &[1.0, 2.0, 3.0]);
    let iv = t32(&[3], &[0.0, 0.0, 0.0]);
    let views = [
        smelt_codegen::jit::TensorView::from(&xv),
        smelt_codegen::jit::TensorView::from(&iv),
    ];
    let out = model.run(&views).unwrap();
    assert_eq!(f32s(&out[0]), vec![4.0, 8.0, 12.0]);
    let mut want = vec![];
    for t in 1..=4 {
        want.extend([-(t as f32), -2.0 * t as f32, -3.0 * t as f32]);
    }
    assert_eq!(f32s(&out[1]), want);
}
