//! Data-movement ops against index arithmetic written in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn seq(n: usize) -> Vec<f32> {
    (0..n).map(|i| i as f32).collect()
}

#[test]
fn transpose_concat_split_slice() {
    let x = seq(24);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 3, 4]);
    let t = g.node(
        Op::Transpose(ops::Transpose {
            perm: Some(vec![2, 0, 1]),
        }),
        &[xi],
    );
    let c = g.node(Op::Concat(ops::Concat { axis: 1 }), &[xi, xi]);
    let sizes = g.ci64(&[1, 3]);
    let sp = g.node_n(
        Op::Split(ops::Split {
            axis: -1,
            num_outputs: None,
        }),
        &[Some(xi), Some(sizes)],
        2,
    );
    let st = g.ci64(&[-1, 3]);
    let en = g.ci64(&[-100, 0]);
    let ax = g.ci64(&[1, 2]);
    let stp = g.ci64(&[-1, -2]);
    let sl = g.node(Op::Slice(ops::Slice {}), &[xi, st, en, ax, stp]);
    let gr = g.finish(&[t, c, sp[0], sp[1], sl]);
    let out = run(&gr, &[t32(&[2, 3, 4], &x)]);
    let at = |i: usize, j: usize, k: usize| x[(i * 3 + j) * 4 + k];
    // Transpose perm (2,0,1): out[k][i][j] = x[i][j][k].
    let mut want = vec![];
    for k in 0..4 {
        for i in 0..2 {
            for j in 0..3 {
                want.push(at(i, j, k));
            }
        }
    }
    assert_eq!(out[0].dims(), &[4, 2, 3]);
    assert_eq!(f32s(&out[0]), want);
    let mut want = vec![];
    for i in 0..2 {
        for _ in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    want.push(at(i, j, k));
                }
            }
        }
    }
    assert_eq!(f32s(&out[1]), want);
    let a: Vec<f32> = (0..6).map(|r| x[r * 4]).collect();
    let b: Vec<f32> = (0..6)
        .flat_map(|r| (1..4).map(move |k| (r * 4 + k) as f32))
        .collect();
    assert_eq!(f32s(&out[2]), a);
    assert_eq!(f32s(&out[3]), b);
    // Slice axis 1 from the end backwards, axis 2 from 3 down by 2 (3, 1).
    let mut want = vec![];
    for i in 0..2 {
        for j in [2, 1, 0] {
            for k in [3, 1] {
                want.push(at(i, j, k));
            }
        }
    }
    assert_eq!(out[4].dims(), &[2, 3, 2]);
    assert_eq!(f32s(&out[4]), want);
}

#[test]
fn gather_expand_tile() {
    let x = seq(12);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[3, 4]);
    let idx = g.konst(Tensor::from_vec(vec![2, 2], &[2i64, -3, 1, 2]).unwrap());
    let ga = g.node(Op::Gather(ops::Gather { axis: 0 }), &[xi, idx]);
    let idx1 = g.konst(Tensor::from_vec(vec![2], &[3i64, 0]).unwrap());
    let gb = g.node(Op::Gather(ops::Gather { axis: 1 }), &[xi, idx1]);
    let shape = g.ci64(&[2, 3, 4]);
    let ex = g.node(Op::Expand(ops::Expand {}), &[xi, shape]);
    let reps = g.ci64(&[2, 1]);
    let ti = g.node(Op::Tile(ops::Tile {}), &[xi, reps]);
    let gr = g.finish(&[ga, gb, ex, ti]);
    let out = run(&gr, &[t32(&[3, 4], &x)]);
    let row = |r: usize| x[r * 4..r * 4 + 4].to_vec();
    assert_eq!(out[0].dims(), &[2, 2, 4]);
    assert_eq!(f32s(&out[0]), [row(2), row(0), row(1), row(2)].concat());
    assert_eq!(f32s(&out[1]), vec![3.0, 0.0, 7.0, 4.0, 11.0, 8.0]);
    assert_eq!(f32s(&out[2]), [x.clone(), x.clone()].concat());
    assert_eq!(f32s(&out[3]), [x.clone(), x.clone()].concat());
}

#[test]
fn pad_constant_edge_reflect() {
    let x = seq(6); // [2,3]
    for mode in ["constant", "edge", "reflect"] {
        let mut g = G::new();
        let xi = g.input("x", DType::F32, &[2, 3]);
        let pads = g.ci64(&[1, 2, 0, 1]);
        let v = g.konst(Tensor::scalar(-1.0f32));
        let p = g.node(Op::Pad(ops::Pad { mode: mode.into() }), &[xi, pads, v]);
        let gr = g.finish(&[p]);
        let out = run(&gr, &[t32(&[2, 3], &x)]);
        assert_eq!(out[0].dims(), &[3, 6]);
        let src = |i: i64, n: i64| -> Option<i64> {
            if (0..n).contains(&i) {
                return Some(i);
            }
            match mode {
                "edge" => Some(i.clamp(0, n - 1)),
                "reflect" => Some(if i < 0 { -i } else { 2 * (n - 1) - i }),
                _ => None,
            }
        };
        let mut want = vec![];
        for i in 0..3i64 {
            for j in 0..6i64 {
                want.push(match (src(i - 1, 2), src(j - 2, 3)) {
                    (Some(a), Some(b)) => x[(a * 3 + b) as usize],
                    _ => -1.0,
                });
            }
        }
        assert_eq!(f32s(&out[0]), want, "{mode}");
    }
}

#[test]
fn reshapes_alias_inside_and_copy_at_outputs() {
    let x = seq(12);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[3, 4]);
    let s = g.ci64(&[2, -1]);
    let r = g.node(Op::Reshape(ops::Reshape { allowzero: 0 }), &[xi, s]);
    let e = g.node(Op::Relu(ops::Relu {}), &[r]);
    let ax = g.ci64(&[0]);
    let u = g.node(Op::Unsqueeze(ops::Unsqueeze {}), &[e, ax]);
    let f = g.node(Op::Flatten(ops::Flatten { axis: 1 }), &[u]);
    let sq = g.node(Op::Squeeze(ops::Squeeze {}), &[f, ax]);
    let id = g.node(Op::Identity(ops::Identity {}), &[xi]);
    let sh = g.node(
        Op::Shape(ops::Shape {
            start: 0,
            end: None,
        }),
        &[u],
    );
    let gr = g.finish(&[sq, id, sh, xi]);
    let xn: Vec<f32> = x.iter().map(|v| v - 5.0).collect();
    let out = run(&gr, &[t32(&[3, 4], &xn)]);
    assert_eq!(out[0].dims(), &[12]);
    assert_eq!(
        f32s(&out[0]),
        xn.iter().map(|v| v.max(0.0)).collect::<Vec<_>>()
    );
    assert_eq!(f32s(&out[1]), xn);
    assert_eq!(out[2].to_i64_vec().unwrap(), vec![1, 2, 6]);
    assert_eq!(f32s(&out[3]), xn);
}

#[test]
fn constant_of_shape_and_dropout() {
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[5]);
    let sh = g.ci64(&[2, 3]);
    let c = g.node(
        Op::ConstantOfShape(ops::ConstantOfShape {
            value: Some(Tensor::from_vec(vec![1], &[7i64]).unwrap()),
        }),
        &[sh],
    );
    let d = g.node_n(Op::Dropout(ops::Dropout { seed: None }), &[Some(xi)], 2);
    let gr = g.finish(&[c, d[0], d[1]]);
    let out = run(&gr, &[t32(&[5], &seq(5))]);
    assert_eq!(out[0].to_i64_vec().unwrap(), vec![7; 6]);
    assert_eq!(f32s(&out[1]), seq(5));
    assert_eq!(out[2].bytes().unwrap(), &[1, 1, 1, 1, 1]);
}

#[test]
fn gather_elements_and_range() {
    let x = seq(6); // [2,3]
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 3]);
    let idx = g.konst(Tensor::from_vec(vec![2, 2], &[2i64, 0, -1, 1]).unwrap());
    let ge = g.node(
        Op::GatherElements(ops::GatherElements { axis: 1 }),
        &[xi, idx],
    );
    let s = g.konst(Tensor::scalar(10i64));
    let l = g.konst(Tensor::scalar(1i64));
    let d = g.konst(Tensor::scalar(-3i64));
    let r = g.node(Op::Range(ops::Range {}), &[s, l, d]);
    let gr = g.finish(&[ge, r]);
    let out = run(&gr, &[t32(&[2, 3], &x)]);
    assert_eq!(f32s(&out[0]), vec![2.0, 0.0, 5.0, 4.0]);
    assert_eq!(out[1].to_i64_vec().unwrap(), vec![10, 7, 4]);
}

#[test]
fn reshaped_constants_stay_constants() {
    // Flatten(const) feeding Gemm's B and Reshape(const) as a graph output.
    let w: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[1, 3]);
    let wc = g.cf32(&[4, 3, 1], &w);
    let wf = g.node(Op::Flatten(ops::Flatten { axis: 1 }), &[wc]);
    let y = g.node(
        Op::Gemm(ops::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        }),
        &[x, wf],
    );
    let s = g.ci64(&[2, 6]);
    let r = g.node(Op::Reshape(ops::Reshape { allowzero: 0 }), &[wc, s]);
    let gr = g.finish(&[y, r]);
    let out = run(&gr, &[t32(&[1, 3], &[1.0, 2.0, 3.0])]);
    let want: Vec<f32> = (0..4)
        .map(|j| (0..3).map(|k| [1.0, 2.0, 3.0][k] * w[j * 3 + k]).sum())
        .collect();
    assert_eq!(f32s(&out[0]), want);
    assert_eq!(out[1].dims(), &[2, 6]);
    assert_eq!(f32s(&out[1]), w);
}

/// Inputs that reach a reduction's axes (through a Cast) and a Reshape's shape (through a
/// Concat) must be known at compile time; an activation input is not, nor a large tensor.
/// Frozen with the given values, the graph compiles and takes only the remaining input.
#[test]
fn compile_time_inputs_are_found_and_frozen() {
    use smelt_codegen::bind::{compile_time_inputs, value_inputs};
    use smelt_codegen::jit::{compile, Options, TensorView};
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[2, 3, 4]);
    let axes = g.input("axes", DType::I32, &[1]);
    let head = g.input("head", DType::I64, &[1]);
    let a64 = g.node(
        Op::Cast(ops::Cast {
            to: DType::I64,
            saturate: 1,
        }),
        &[axes],
    );
    let r = g.node(
        Op::ReduceSum(ops::ReduceSum {
            keepdims: 0,
            noop_with_empty_axes: 0,
        }),
        &[x, a64],
    );
    let tail = g.ci64(&[-1]);
    let shape = g.node(Op::Concat(ops::Concat { axis: 0 }), &[head, tail]);
    let y = g.node(Op::Reshape(ops::Reshape { allowzero: 0 }), &[r, shape]);
    let gr = g.finish(&[y]);
    assert_eq!(value_inputs(&gr), vec!["axes", "head"]);
    let xs = seq(24);
    let given = [
        t32(&[2, 3, 4], &xs),
        Tensor::from_vec(vec![1], &[1i32]).unwrap(),
        Tensor::from_vec(vec![1], &[4i64]).unwrap(),
    ];
    assert_eq!(compile_time_inputs(&gr, &given), vec!["axes", "head"]);
    let big = Tensor::from_vec(vec![5000], &[0i64; 5000]).unwrap();
    let large = [given[0].clone(), given[1].clone(), big];
    assert_eq!(compile_time_inputs(&gr, &large), vec!["axes"]);
    // Without the values the reduction is refused, and the reason says how to lift it.
    let refused = smelt_codegen::check(&gr);
    assert!(
        refused
            .iter()
            .any(|u| u.op == "ReduceSum" && u.reason.contains("`axes`")),
        "{refused:?}"
    );
    // The Reshape's output shape is unknown: its shape comes from `head`.
    assert!(
        refused.iter().any(|u| u.op == "Reshape"
            && u.reason.contains("output shape depends")
            && u.reason.contains("`head`")),
        "{refused:?}"
    );
    let opts = Options {
        const_inputs: vec![
            ("axes".into(), given[1].clone()),
            ("head".into(), given[2].clone()),
        ],
        ..Default::default()
    };
    let mut m = compile(&gr, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.inputs().len(), 1);
    let out = m.run(&[TensorView::from(&given[0])]).unwrap();
    // Sum over axis 1 of x[i][j][k] = 12 i + 4 j + k: 36 i + 12 + 3 k, as [4, 2].
    let want: Vec<f32> = (0..2)
        .flat_map(|i| (0..4).map(move |k| (36 * i + 12 + 3 * k) as f32))
        .collect();
    assert_eq!(out[0].dims(), &[4, 2]);
    assert_eq!(f32s(&out[0]), want);
}

/// A Slice whose starts and ends come at run time but whose output shape is static (declared)
/// copies from the run-time start, and stops with a non-zero status when the bounds would
/// give another extent.
#[test]
fn run_time_slice_bounds_against_a_static_extent() {
    use smelt_codegen::jit::{compile, Options, TensorView};
    use smelt_ir::Type;
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[2, 6]);
    let st = g.input("starts", DType::I64, &[1]);
    let en = g.input("ends", DType::I64, &[1]);
    let ax = g.ci64(&[1]);
    let stp = g.ci64(&[-2]);
    let y = g.node(Op::Slice(ops::Slice {}), &[x, st, en, ax, stp]);
    let mut gr = g.finish(&[y]);
    gr.set_value_type(y, Type::tensor(DType::F32, &[2, 2]));
    let mut m = compile(&gr, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let xs = seq(12);
    let xt = t32(&[2, 6], &xs);
    let one = |v: i64| Tensor::from_vec(vec![1], &[v]).unwrap();
    // starts -2 (= 4), ends 0, step -2: columns 4 and 2.
    let (s, e) = (one(-2), one(0));
    let out = m
        .run(&[TensorView::from(&xt), (&s).into(), (&e).into()])
        .unwrap();
    assert_eq!(f32s(&out[0]), vec![4.0, 2.0, 10.0, 8.0]);
    // Starts past the end clamp to 5: columns 5 and 3.
    let (s, e) = (one(100), one(1));
    let out = m
        .run(&[TensorView::from(&xt), (&s).into(), (&e).into()])
        .unwrap();
    assert_eq!(f32s(&out[0]), vec![5.0, 3.0, 11.0, 9.0]);
    // Three columns (5, 3, 1) do not fit the static extent of two: refused at run time.
    let (s, e) = (one(5), one(-100));
    assert!(m
        .run(&[TensorView::from(&xt), (&s).into(), (&e).into()])
        .is_err());
}

/// Pad's fill value and Range's bounds as run-time values (the output shapes static):
/// the value is stored at run time; Range checks that its bounds give the static extent
/// (status 1 otherwise).
#[test]
fn run_time_pad_value_and_range_bounds() {
    use smelt_codegen::jit::{compile, Options, TensorView};
    use smelt_ir::Type;
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[2, 2]);
    let v = g.input("v", DType::F32, &[]);
    let pads = g.ci64(&[0, 1, 1, 0]);
    let p = g.node_n(
        Op::Pad(ops::Pad {
            mode: "constant".into(),
        }),
        &[Some(x), Some(pads), Some(v)],
        1,
    )[0];
    let s = g.input("s", DType::F32, &[]);
    let l = g.input("l", DType::F32, &[]);
    let d = g.input("d", DType::F32, &[]);
    let r = g.node(Op::Range(ops::Range {}), &[s, l, d]);
    let mut gr = g.finish(&[p, r]);
    gr.set_value_type(r, Type::tensor(DType::F32, &[3]));
    let mut m = compile(&gr, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let xt = t32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let sc = |v: f32| Tensor::from_vec(vec![], &[v]).unwrap();
    let (vt, st, lt, dt) = (sc(9.0), sc(1.0), sc(2.0), sc(0.4));
    let out = m
        .run(&[
            TensorView::from(&xt),
            (&vt).into(),
            (&st).into(),
            (&lt).into(),
            (&dt).into(),
        ])
        .unwrap();
    // pads [0, 1, 1, 0]: one column before, one row after.
    assert_eq!(
        f32s(&out[0]),
        vec![9.0, 1.0, 2.0, 9.0, 3.0, 4.0, 9.0, 9.0, 9.0]
    );
    close(&f32s(&out[1]), &[1.0, 1.4, 1.8], 1e-6, 1e-6);
    // Limit 2.5 gives four elements: refused.
    let lt = sc(2.5);
    assert!(m
        .run(&[
            TensorView::from(&xt),
            (&vt).into(),
            (&st).into(),
            (&lt).into(),
            (&dt).into()
        ])
        .is_err());
}

/// Trilu on a batch of two 3x4 matrices (values 1..=24), hand-checked triangles.
#[test]
fn trilu_keeps_a_triangle_from_diagonal_k() {
    let x: Vec<f32> = (1..=24).map(|v| v as f32).collect();
    let run_trilu = |upper: i64, k: i64| -> Vec<f32> {
        let mut b = G::new();
        let xi = b.input("x", DType::F32, &[2, 3, 4]);
        let ki = b.ci64(&[k]);
        let y = b.node(Op::Trilu(ops::Trilu { upper }), &[xi, ki]);
        let g = b.finish(&[y]);
        f32s(&run(&g, &[t32(&[2, 3, 4], &x)])[0])
    };
    // Upper, k = 1: keep j - i >= 1.
    #[rustfmt::skip]
    let want_upper = [
        0., 2., 3., 4.,   0., 0., 7., 8.,   0., 0., 0., 12.,
        0., 14., 15., 16., 0., 0., 19., 20., 0., 0., 0., 24.,
    ];
    assert_eq!(run_trilu(1, 1), want_upper);
    // Lower, k = -1: keep j - i <= -1.
    #[rustfmt::skip]
    let want_lower = [
        0., 0., 0., 0.,   5., 0., 0., 0.,   9., 10., 0., 0.,
        0., 0., 0., 0.,   17., 0., 0., 0.,  21., 22., 0., 0.,
    ];
    assert_eq!(run_trilu(0, -1), want_lower);
}
