//! Evaluator tests against hand-computed values.

use super::*;
use crate::testutil::op;
use smelt_ir::Attr;

fn f(dims: &[usize], v: &[f32]) -> Tensor {
    Tensor::from_vec(dims.to_vec(), v).unwrap()
}
fn i(dims: &[usize], v: &[i64]) -> Tensor {
    Tensor::from_vec(dims.to_vec(), v).unwrap()
}
fn ev(o: Op, ins: &[&Tensor]) -> Tensor {
    let a: Vec<Option<&Tensor>> = ins.iter().map(|t| Some(*t)).collect();
    eval_op(&o, &a, 1).unwrap().remove(0)
}
fn fs(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}
fn is(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().unwrap()
}

#[test]
fn broadcasting_arithmetic_and_comparisons() {
    let a = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f(&[3], &[10., 20., 30.]);
    let c = f(&[2, 1], &[1., -1.]);
    assert_eq!(
        fs(&ev(op("Add", &[]), &[&a, &b])),
        [11., 22., 33., 14., 25., 36.]
    );
    assert_eq!(
        fs(&ev(op("Mul", &[]), &[&a, &c])),
        [1., 2., 3., -4., -5., -6.]
    );
    let lt = ev(op("Less", &[]), &[&a, &f(&[], &[3.5])]);
    assert_eq!(lt.dtype(), DType::Bool);
    assert_eq!(is(&lt), [1, 1, 1, 0, 0, 0]);
    // Integer division truncates; Mod follows the divisor's sign unless fmod=1.
    let x = i(&[3], &[7, -7, 7]);
    let y = i(&[3], &[2, 2, -2]);
    assert_eq!(is(&ev(op("Div", &[]), &[&x, &y])), [3, -3, -3]);
    assert_eq!(is(&ev(op("Mod", &[]), &[&x, &y])), [1, 1, -1]);
    assert_eq!(
        is(&ev(op("Mod", &[("fmod", Attr::Int(1))]), &[&x, &y])),
        [1, -1, 1]
    );
    assert!(eval_op(&op("Div", &[]), &[Some(&x), Some(&i(&[1], &[0]))], 1).is_err());
    assert_eq!(
        fs(&ev(
            op("Max", &[]),
            &[&b, &f(&[1], &[15.]), &f(&[3], &[0., 0., 40.])]
        )),
        [15., 20., 40.]
    );
    assert_eq!(
        fs(&ev(op("Sqrt", &[]), &[&f(&[2], &[4., 2.25])])),
        [2., 1.5]
    );
    assert_eq!(
        fs(&ev(op("Round", &[]), &[&f(&[4], &[0.5, 1.5, 2.5, -0.5])])),
        [0., 2., 2., -0.]
    );
}

#[test]
fn shape_ops() {
    let x = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    assert_eq!(is(&ev(op("Shape", &[]), &[&x])), [2, 3]);
    assert_eq!(
        is(&ev(op("Shape", &[("start", Attr::Int(-1))]), &[&x])),
        [3]
    );
    let t = ev(op("Transpose", &[]), &[&x]);
    assert_eq!(t.dims(), [3, 2]);
    assert_eq!(fs(&t), [1., 4., 2., 5., 3., 6.]);
    let r = ev(op("Reshape", &[]), &[&x, &i(&[2], &[0, -1])]);
    assert_eq!(r.dims(), [2, 3]);
    let g = ev(
        op("Gather", &[("axis", Attr::Int(1))]),
        &[&x, &i(&[2], &[-1, 0])],
    );
    assert_eq!(g.dims(), [2, 2]);
    assert_eq!(fs(&g), [3., 1., 6., 4.]);
    let s = ev(
        op("Slice", &[]),
        &[
            &x,
            &i(&[1], &[-1]),
            &i(&[1], &[i64::MIN]),
            &i(&[1], &[1]),
            &i(&[1], &[-2]),
        ],
    );
    assert_eq!(fs(&s), [3., 1., 6., 4.]);
    let c = ev(
        op("Concat", &[("axis", Attr::Int(0))]),
        &[&i(&[1], &[2]), &i(&[2], &[-1, 5])],
    );
    assert_eq!(is(&c), [2, -1, 5]);
    let e = ev(
        op("Expand", &[]),
        &[&f(&[2, 1], &[1., 2.]), &i(&[2], &[2, 2])],
    );
    assert_eq!(fs(&e), [1., 1., 2., 2.]);
    let tl = ev(op("Tile", &[]), &[&f(&[2], &[1., 2.]), &i(&[1], &[2])]);
    assert_eq!(fs(&tl), [1., 2., 1., 2.]);
    let u = ev(
        op("Unsqueeze", &[]),
        &[&f(&[2], &[1., 2.]), &i(&[2], &[0, -1])],
    );
    assert_eq!(u.dims(), [1, 2, 1]);
    let sq = ev(op("Squeeze", &[]), &[&u]);
    assert_eq!(sq.dims(), [2]);
    let w = ev(
        op("Where", &[]),
        &[
            &Tensor::from_vec(vec![2], &[true, false]).unwrap(),
            &f(&[2], &[1., 2.]),
            &f(&[], &[9.]),
        ],
    );
    assert_eq!(fs(&w), [1., 9.]);
    let cs = ev(
        op(
            "ConstantOfShape",
            &[(
                "value",
                Attr::Tensor(Tensor::from_vec(vec![1], &[7i64]).unwrap()),
            )],
        ),
        &[&i(&[2], &[2, 1])],
    );
    assert_eq!((cs.dims(), is(&cs)), (&[2usize, 1][..], vec![7, 7]));
    let rg = ev(
        op("Range", &[]),
        &[
            &Tensor::scalar(1i64),
            &Tensor::scalar(8i64),
            &Tensor::scalar(3i64),
        ],
    );
    assert_eq!(is(&rg), [1, 4, 7]);
    let cast = ev(
        op("Cast", &[("to", Attr::Int(7))]),
        &[&f(&[3], &[-1.7, 2.9, 0.5])],
    );
    assert_eq!(is(&cast), [-1, 2, 0]);
    let split = eval_op(
        &op("Split", &[]),
        &[Some(&f(&[3], &[1., 2., 3.])), Some(&i(&[2], &[1, 2]))],
        2,
    )
    .unwrap();
    assert_eq!((fs(&split[0]), fs(&split[1])), (vec![1.], vec![2., 3.]));
}

#[test]
fn reductions_and_matmul() {
    let x = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let s = ev(
        op("ReduceSum", &[("keepdims", Attr::Int(0))]),
        &[&x, &i(&[1], &[1])],
    );
    assert_eq!((s.dims(), fs(&s)), (&[2usize][..], vec![6., 15.]));
    let m = ev(op("ReduceMean", &[]), &[&x, &i(&[1], &[0])]);
    assert_eq!((m.dims(), fs(&m)), (&[1usize, 3][..], vec![2.5, 3.5, 4.5]));
    let am = ev(op("ArgMax", &[("axis", Attr::Int(1))]), &[&x]);
    assert_eq!(is(&am), [2, 2]);
    let b = f(&[3, 2], &[1., 0., 0., 1., 1., 1.]);
    let mm = ev(op("MatMul", &[]), &[&x, &b]);
    assert_eq!(
        (mm.dims(), fs(&mm)),
        (&[2usize, 2][..], vec![4., 5., 10., 11.])
    );
    let gm = ev(
        op(
            "Gemm",
            &[("transB", Attr::Int(1)), ("alpha", Attr::Float(2.0))],
        ),
        &[&x, &f(&[1, 3], &[1., 1., 1.]), &f(&[1], &[0.5])],
    );
    assert_eq!(fs(&gm), [12.5, 30.5]);
}

#[test]
fn quantize_linear_rounds_half_to_even_and_saturates() {
    let x = f(&[5], &[1.25, -0.75, 0.25, 100.0, -100.0]);
    // x / 0.5 = 2.5, -1.5, 0.5, 200, -200; half to even: 2, -2, 0; + zero point 1; saturate.
    let q = ev(
        op("QuantizeLinear", &[]),
        &[&x, &f(&[], &[0.5]), &Tensor::scalar(1i8)],
    );
    assert_eq!(q.dtype(), DType::I8);
    assert_eq!(is(&q), [3, -1, 1, 127, -128]);
    // No zero point: uint8.
    let u = ev(op("QuantizeLinear", &[]), &[&x, &f(&[], &[0.5])]);
    assert_eq!((u.dtype(), is(&u)), (DType::U8, vec![2, 0, 0, 200, 0]));
    // Per axis 0: rows scaled by 0.5 and 2, zero points 0 and 10.
    let w = f(&[2, 2], &[1., 2., 3., 4.]);
    let pa = ev(
        op("QuantizeLinear", &[("axis", Attr::Int(0))]),
        &[
            &w,
            &f(&[2], &[0.5, 2.0]),
            &Tensor::from_vec(vec![2], &[0u8, 10]).unwrap(),
        ],
    );
    assert_eq!(is(&pa), [2, 4, 12, 12]);
    // Blocked along axis 1, blocks of 2: scales 1 and 0.5.
    let bl = ev(
        op(
            "QuantizeLinear",
            &[("axis", Attr::Int(1)), ("block_size", Attr::Int(2))],
        ),
        &[&f(&[1, 4], &[1., 2., 3., 4.]), &f(&[1, 2], &[1.0, 0.5])],
    );
    assert_eq!(is(&bl), [1, 2, 6, 8]);
    // Dequantize: (q - zp) * scale.
    let d = ev(
        op("DequantizeLinear", &[]),
        &[&q, &f(&[], &[0.5]), &Tensor::scalar(1i8)],
    );
    assert_eq!(fs(&d), [1.0, -1.0, 0.0, 63.0, -64.5]);
    let dpa = ev(
        op("DequantizeLinear", &[("axis", Attr::Int(0))]),
        &[
            &pa,
            &f(&[2], &[0.5, 2.0]),
            &Tensor::from_vec(vec![2], &[0u8, 10]).unwrap(),
        ],
    );
    assert_eq!(fs(&dpa), [1., 2., 4., 4.]);
}

#[test]
fn unsupported_ops_are_refused_not_panicked() {
    let x = f(&[1, 1, 2, 2], &[1., 2., 3., 4.]);
    let r = eval_op(
        &op("InstanceNormalization", &[]),
        &[Some(&x), Some(&x), Some(&x)],
        1,
    );
    assert!(matches!(r, Err(EvalError::Unsupported(_))));
    let r = eval_op(
        &op("Add", &[]),
        &[Some(&x), Some(&f(&[3], &[1., 2., 3.]))],
        1,
    );
    assert!(matches!(r, Err(EvalError::Invalid(_))));
    let r = eval_op(&op("Add", &[]), &[Some(&x)], 1);
    assert!(matches!(r, Err(EvalError::Invalid(_))));
}
