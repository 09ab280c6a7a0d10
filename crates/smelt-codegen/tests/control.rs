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
