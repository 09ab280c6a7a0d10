//! Differential tests of the JIT against tract: seeded random shapes and attributes per op
//! family (property-style). Each case is a one-op graph written as ONNX; tract runs the file,
//! the JIT compiles the same graph, and the outputs must agree (rtol 1e-4, atol 1e-5; 1e-3 for
//! transcendental ops). A case tract cannot run is skipped and counted.

mod common;

use smelt_ir::{ops, DType, Graph, Model, Op, Tensor, Type, Value, ValueId};
use smelt_verify::{compare, Tolerance};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }
    fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor(&mut self, dims: &[usize]) -> Tensor {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.f()).collect();
        Tensor::from_vec(dims.to_vec(), &v).unwrap()
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.range(0, v.len() - 1)]
    }
}

/// A graph with one op over `inputs` (random data) and `consts`.
fn one_op(op: Op, inputs: &[Vec<usize>], consts: Vec<Option<Tensor>>, n_out: usize) -> Graph {
    let mut g = Graph::new("case");
    let mut ins = vec![];
    for (i, d) in inputs.iter().enumerate() {
        ins.push(Some(
            g.add_input(format!("x{i}"), Type::tensor(DType::F32, d)),
        ));
    }
    for (i, c) in consts.into_iter().enumerate() {
        ins.push(c.map(|t| g.add_const(format!("c{i}"), t)));
    }
    let outs = (0..n_out)
        .map(|i| Value {
            name: format!("y{i}"),
            ty: Type::Unknown,
        })
        .collect();
    let id = g.add_node("op", op, &ins, outs).unwrap();
    g.set_outputs((0..n_out).map(|i| ValueId::new(id, i as u32)).collect())
        .unwrap();
    g
}

#[derive(Default)]
struct Tally {
    compared: usize,
    tract_skipped: usize,
    failures: Vec<String>,
    /// When set, the absolute tolerance grows to this fraction of the expected output's
    /// largest magnitude (for algorithms whose rounding error scales with the accumulated
    /// terms rather than with each output element, such as Winograd convolution).
    scaled_atol: Option<f32>,
}

fn run_case(label: &str, mut g: Graph, rng: &mut Rng, tol: Tolerance, t: &mut Tally) {
    if let Err(e) = smelt_ir::infer::infer_graph(&mut g) {
        // The generator made an invalid combination: not a test of anything.
        let _ = e;
        return;
    }
    let inputs: Vec<Tensor> = g
        .inputs()
        .iter()
        .map(|v| rng.tensor(&g.value_type(*v).static_dims().unwrap()))
        .collect();
    let m = Model::new(g, 17);
    let bytes = smelt_onnx::model_to_bytes(&m).unwrap();
    let expected = match std::panic::catch_unwind(|| smelt_verify::run_tract_bytes(&bytes, &inputs))
    {
        Ok(Ok(o)) => o,
        _ => {
            t.tract_skipped += 1;
            return;
        }
    };
    let opts = common::jit_options(&m, &inputs);
    let text = m.graph.to_text();
    let mut cm = match smelt::compile_jit(&m, &opts) {
        Ok(c) => c,
        Err(e) => {
            t.failures
                .push(format!("{label}: does not compile: {e}\n{text}"));
            return;
        }
    };
    let views: Vec<smelt::codegen::jit::TensorView> = inputs.iter().map(Into::into).collect();
    let out = cm.run(&views).unwrap();
    t.compared += 1;
    for (k, (a, e)) in out.iter().zip(&expected).enumerate() {
        let tol = match (t.scaled_atol, e.to_f32_vec()) {
            (Some(f), Some(v)) => {
                let scale = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                Tolerance {
                    atol: tol.atol.max(f64::from(f * scale)),
                    ..tol
                }
            }
            _ => tol,
        };
        let c = compare(a, e, tol);
        if !c.ok() {
            t.failures
                .push(format!("{label}: output {k}: {c:?}\n{text}"));
        }
    }
}

const EXACT: Tolerance = Tolerance::EXACT;
const TRANSCENDENTAL: Tolerance = Tolerance {
    rtol: 1e-3,
    atol: 1e-5,
};

#[test]
fn conv_matches_tract() {
    let mut rng = Rng(11);
    let mut t = Tally::default();
    for i in 0..60 {
        let depthwise = rng.range(0, 3) == 0;
        let group = if depthwise {
            rng.range(1, 4)
        } else {
            rng.pick(&[1, 1, 2])
        };
        let cin_per = if depthwise { 1 } else { rng.range(1, 3) };
        let cin = cin_per * group;
        let cout = if depthwise {
            cin
        } else {
            group * rng.range(1, 4)
        };
        let two_d = rng.range(0, 4) > 0;
        let k = rng.range(1, 3);
        let stride = rng.range(1, 2) as i64;
        let dil = rng.range(1, 2) as i64;
        let pad = rng.range(0, 1) as i64;
        let h = rng.range(k * dil as usize + 1, 11);
        let w = rng.range(k * dil as usize + 1, 11);
        let (x, wd, attrs_n) = if two_d {
            (vec![1, cin, h, w], vec![cout, cin_per, k, k], 2)
        } else {
            (vec![1, cin, w], vec![cout, cin_per, k], 1)
        };
        let auto_pad = rng
            .pick(&["NOTSET", "NOTSET", "SAME_UPPER", "VALID"])
            .to_string();
        let op = Op::Conv(ops::Conv {
            auto_pad: auto_pad.clone(),
            dilations: Some(vec![dil; attrs_n]),
            group: group as i64,
            kernel_shape: Some(vec![k as i64; attrs_n]),
            pads: (auto_pad == "NOTSET").then(|| vec![pad; 2 * attrs_n]),
            strides: Some(vec![stride; attrs_n]),
        });
        let bias = (rng.range(0, 1) == 1).then(|| rng.tensor(&[cout]));
        let wt = rng.tensor(&wd);
        let g = one_op(op, &[x], vec![Some(wt), bias], 1);
        run_case(&format!("conv case {i}"), g, &mut rng, EXACT, &mut t);
    }
    eprintln!(
        "conv: {} compared, {} skipped by tract",
        t.compared, t.tract_skipped
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    assert!(t.compared >= 40);
}

/// 3×3 stride-1 convolutions with enough channels that the JIT runs them by Winograd
/// (F(2×2,3×3) or F(4×4,3×3), whichever pads less): odd and even sizes, partial tile groups,
/// asymmetric and SAME padding, channel counts that are not multiples of 4, batches of 1 and 2.
#[test]
fn winograd_convs_match_tract() {
    let mut rng = Rng(29);
    // F(4x4,3x3)'s transforms multiply by up to 8 and 1/24: its rounding error is a few 1e-6
    // of the outputs' scale (measured: at most 5e-6 here), against about 1e-7 for a direct
    // convolution; near-zero outputs then miss a pure 1e-5 atol.
    let mut t = Tally {
        scaled_atol: Some(2e-5),
        ..Tally::default()
    };
    for i in 0..24 {
        let cin = rng.range(16, 40);
        let cout = rng.range(16, 40);
        let h = rng.range(6, 30);
        let w = rng.range(6, 30);
        let auto_pad = rng
            .pick(&["NOTSET", "NOTSET", "SAME_UPPER", "VALID"])
            .to_string();
        let pads = (auto_pad == "NOTSET").then(|| {
            let p = |r: &mut Rng| r.range(0, 1) as i64;
            vec![p(&mut rng), p(&mut rng), p(&mut rng), p(&mut rng)]
        });
        let op = Op::Conv(ops::Conv {
            auto_pad,
            dilations: None,
            group: 1,
            kernel_shape: Some(vec![3, 3]),
            pads,
            strides: None,
        });
        let bias = (rng.range(0, 1) == 1).then(|| rng.tensor(&[cout]));
        let wt = rng.tensor(&[cout, cin, 3, 3]);
        let batch = rng.range(1, 2);
        let g = one_op(op, &[vec![batch, cin, h, w]], vec![Some(wt), bias], 1);
        run_case(&format!("winograd case {i}"), g, &mut rng, EXACT, &mut t);
    }
    eprintln!("winograd: {} compared", t.compared);
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    assert!(t.compared >= 20);
}

/// Convolutions with strides above 2 (patch embeddings, AlexNet-style stems), which the JIT
/// runs as a GEMM over gathered patches: kernel = stride and overlapping windows, pads,
/// dilations, rectangular strides, batches of 1 and 2.
#[test]
fn strided_convs_match_tract() {
    let mut rng = Rng(41);
    let mut t = Tally::default();
    for i in 0..30 {
        let cin = rng.range(1, 6);
        let cout = rng.range(1, 13);
        let kh = rng.range(1, 8);
        let kw = rng.range(1, 8);
        let sh = rng.range(1, 8) as i64;
        let sw = rng.range(3, 8) as i64;
        let dil = rng.pick(&[1, 1, 2]) as i64;
        let pad = rng.range(0, 2) as i64;
        let h = rng.range(kh * dil as usize, 30);
        let w = rng.range(kw * dil as usize, 30);
        let batch = rng.range(1, 2);
        let op = Op::Conv(ops::Conv {
            auto_pad: "NOTSET".into(),
            dilations: Some(vec![dil, dil]),
            group: 1,
            kernel_shape: Some(vec![kh as i64, kw as i64]),
            pads: Some(vec![pad, pad, pad, pad]),
            strides: Some(vec![sh, sw]),
        });
        let bias = (rng.range(0, 1) == 1).then(|| rng.tensor(&[cout]));
        let wt = rng.tensor(&[cout, cin, kh, kw]);
        let g = one_op(op, &[vec![batch, cin, h, w]], vec![Some(wt), bias], 1);
        run_case(
            &format!("strided conv case {i}"),
            g,
            &mut rng,
            EXACT,
            &mut t,
        );
    }
    eprintln!("strided conv: {} compared", t.compared);
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    assert!(t.compared >= 20);
}

/// Depthwise convolutions (one channel per group), which the JIT runs without a padded copy:
/// border outputs with only the taps inside the input, interior ones four per vector; odd
/// kernels and pads, strides 1 to 3, dilations, maps from 1 to 40 wide.
#[test]
fn depthwise_convs_match_tract() {
    let mut rng = Rng(53);
    let mut t = Tally::default();
    for i in 0..40 {
        let c = rng.range(2, 9);
        let kh = rng.range(1, 7);
        let kw = rng.range(1, 7);
        let s = rng.range(1, 3) as i64;
        let dil = rng.pick(&[1, 1, 2]) as i64;
        let pt = rng.range(0, 3) as i64;
        let pl = rng.range(0, 3) as i64;
        let h = rng.range((kh - 1) * dil as usize + 1, 40);
        let w = rng.range((kw - 1) * dil as usize + 1, 40);
        let op = Op::Conv(ops::Conv {
            auto_pad: "NOTSET".into(),
            dilations: Some(vec![dil, dil]),
            group: c as i64,
            kernel_shape: Some(vec![kh as i64, kw as i64]),
            pads: Some(vec![pt, pl, pt, pl]),
            strides: Some(vec![s, s]),
        });
        let bias = (rng.range(0, 1) == 1).then(|| rng.tensor(&[c]));
        let wt = rng.tensor(&[c, 1, kh, kw]);
        let g = one_op(
            op,
            &[vec![rng.range(1, 2), c, h, w]],
            vec![Some(wt), bias],
            1,
        );
        run_case(&format!("depthwise case {i}"), g, &mut rng, EXACT, &mut t);
    }
    eprintln!("depthwise: {} compared", t.compared);
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
    assert!(t.compared >= 30);
}

#[test]
fn matmul_and_gemm_match_tract() {
    let mut rng = Rng(12);
    let mut t = Tally::default();
    for i in 0..40 {
        let (m, k, n) = (rng.range(1, 9), rng.range(1, 17), rng.range(1, 13));
        let batch: Vec<usize> = [vec![], vec![2], vec![3, 1], vec![1, 2]][rng.range(0, 3)].clone();
        let mut a = batch.clone();
        a.extend([m, k]);
        let b = match rng.range(0, 2) {
            0 => vec![k, n],
            1 => {
                let mut b = batch.clone();
                b.extend([k, n]);
                b
            }
            _ => {
                let mut b: Vec<usize> = batch.iter().map(|_| 1).collect();
                b.extend([k, n]);
                b
            }
        };
        let const_b = rng.range(0, 1) == 1;
        let g = if const_b {
            one_op(
                Op::MatMul(ops::MatMul {}),
                &[a],
                vec![Some(rng.tensor(&b))],
                1,
            )
        } else {
            one_op(Op::MatMul(ops::MatMul {}), &[a, b], vec![], 1)
        };
        run_case(&format!("matmul case {i}"), g, &mut rng, EXACT, &mut t);
        let (ta, tb) = (rng.range(0, 1) == 1, rng.range(0, 1) == 1);
        let ad = if ta { vec![k, m] } else { vec![m, k] };
        let bd = if tb { vec![n, k] } else { vec![k, n] };
        let c = match rng.range(0, 2) {
            0 => None,
            1 => Some(rng.tensor(&[n])),
            _ => Some(rng.tensor(&[m, n])),
        };
        let op = Op::Gemm(ops::Gemm {
            alpha: rng.pick(&[1.0, 0.5]),
            beta: rng.pick(&[1.0, 2.0]),
            trans_a: ta,
            trans_b: tb,
        });
        let g = one_op(op, &[ad], vec![Some(rng.tensor(&bd)), c], 1);
        run_case(&format!("gemm case {i}"), g, &mut rng, EXACT, &mut t);
    }
    eprintln!(
        "matmul/gemm: {} compared, {} skipped by tract",
        t.compared, t.tract_skipped
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
}

#[test]
fn broadcasting_elementwise_ops_match_tract() {
    let mut rng = Rng(13);
    let mut t = Tally::default();
    for i in 0..60 {
        let rank = rng.range(1, 4);
        let full: Vec<usize> = (0..rank).map(|_| rng.range(1, 5)).collect();
        let other: Vec<usize> = {
            let drop = rng.range(0, rank - 1);
            full[drop..]
                .iter()
                .map(|d| if rng.range(0, 2) == 0 { 1 } else { *d })
                .collect()
        };
        let (a, b) = if rng.range(0, 1) == 0 {
            (full.clone(), other)
        } else {
            (other, full.clone())
        };
        let (op, tol) = match rng.range(0, 7) {
            0 => (Op::Add(ops::Add {}), EXACT),
            1 => (Op::Sub(ops::Sub {}), EXACT),
            2 => (Op::Mul(ops::Mul {}), EXACT),
            3 => (Op::Max(ops::Max {}), EXACT),
            4 => (Op::Min(ops::Min {}), EXACT),
            5 => (Op::PRelu(ops::PRelu {}), EXACT),
            _ => (Op::Div(ops::Div {}), TRANSCENDENTAL),
        };
        let (a, b) = if matches!(op, Op::PRelu(_)) {
            (full.clone(), full[full.len() - 1..].to_vec())
        } else {
            (a, b)
        };
        let g = one_op(op, &[a, b], vec![], 1);
        run_case(&format!("binary case {i}"), g, &mut rng, tol, &mut t);
        let shape = full.clone();
        let (op, tol) = match rng.range(0, 6) {
            0 => (Op::Relu(ops::Relu {}), EXACT),
            1 => (Op::Sigmoid(ops::Sigmoid {}), TRANSCENDENTAL),
            2 => (Op::Tanh(ops::Tanh {}), TRANSCENDENTAL),
            3 => (Op::Exp(ops::Exp {}), TRANSCENDENTAL),
            4 => (Op::Erf(ops::Erf {}), TRANSCENDENTAL),
            5 => (Op::LeakyRelu(ops::LeakyRelu { alpha: 0.1 }), EXACT),
            _ => (Op::Abs(ops::Abs {}), EXACT),
        };
        let g = one_op(op, &[shape], vec![], 1);
        run_case(&format!("unary case {i}"), g, &mut rng, tol, &mut t);
    }
    eprintln!(
        "elementwise: {} compared, {} skipped by tract",
        t.compared, t.tract_skipped
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
}

#[test]
fn pooling_reductions_and_data_movement_match_tract() {
    let mut rng = Rng(14);
    let mut t = Tally::default();
    for i in 0..40 {
        let (c, h, w) = (rng.range(1, 4), rng.range(3, 10), rng.range(3, 10));
        let k = rng.range(1, 3) as i64;
        let s = rng.range(1, 2) as i64;
        let p = if k > 1 { rng.range(0, 1) as i64 } else { 0 };
        let ceil = rng.range(0, 1) as i64;
        let op = if rng.range(0, 1) == 0 {
            Op::MaxPool(ops::MaxPool {
                auto_pad: "NOTSET".into(),
                ceil_mode: ceil,
                dilations: None,
                kernel_shape: vec![k, k],
                pads: Some(vec![p; 4]),
                storage_order: 0,
                strides: Some(vec![s, s]),
            })
        } else {
            Op::AveragePool(ops::AveragePool {
                auto_pad: "NOTSET".into(),
                ceil_mode: ceil,
                count_include_pad: rng.range(0, 1) as i64,
                dilations: None,
                kernel_shape: vec![k, k],
                pads: Some(vec![p; 4]),
                strides: Some(vec![s, s]),
            })
        };
        run_case(
            &format!("pool case {i}"),
            one_op(op, &[vec![1, c, h, w]], vec![], 1),
            &mut rng,
            EXACT,
            &mut t,
        );

        let rank = rng.range(1, 4);
        let dims: Vec<usize> = (0..rank).map(|_| rng.range(1, 5)).collect();
        let axes: Vec<i64> = (0..rank as i64).filter(|_| rng.range(0, 1) == 1).collect();
        let keep = rng.range(0, 1) as i64;
        let op = match rng.range(0, 2) {
            0 => Op::ReduceMean(ops::ReduceMean {
                keepdims: keep,
                noop_with_empty_axes: 0,
            }),
            1 => Op::ReduceSum(ops::ReduceSum {
                keepdims: keep,
                noop_with_empty_axes: 0,
            }),
            _ => Op::ReduceMax(ops::ReduceMax {
                keepdims: keep,
                noop_with_empty_axes: 0,
            }),
        };
        let axes_t = (!axes.is_empty()).then(|| Tensor::from_vec(vec![axes.len()], &axes).unwrap());
        run_case(
            &format!("reduce case {i}"),
            one_op(op, std::slice::from_ref(&dims), vec![axes_t], 1),
            &mut rng,
            EXACT,
            &mut t,
        );

        let mut perm: Vec<i64> = (0..rank as i64).collect();
        for j in (1..perm.len()).rev() {
            let r = rng.range(0, j);
            perm.swap(j, r);
        }
        run_case(
            &format!("transpose case {i}"),
            one_op(
                Op::Transpose(ops::Transpose { perm: Some(perm) }),
                std::slice::from_ref(&dims),
                vec![],
                1,
            ),
            &mut rng,
            EXACT,
            &mut t,
        );

        let axis = rng.range(0, rank - 1);
        let mut other = dims.clone();
        other[axis] = rng.range(1, 4);
        run_case(
            &format!("concat case {i}"),
            one_op(
                Op::Concat(ops::Concat {
                    axis: axis as i64 - rank as i64 * rng.range(0, 1) as i64,
                }),
                &[dims.clone(), other],
                vec![],
                1,
            ),
            &mut rng,
            EXACT,
            &mut t,
        );

        let ax = rng.range(0, rank - 1) as i64;
        run_case(
            &format!("softmax case {i}"),
            one_op(
                Op::Softmax(ops::Softmax { axis: ax }),
                std::slice::from_ref(&dims),
                vec![],
                1,
            ),
            &mut rng,
            TRANSCENDENTAL,
            &mut t,
        );

        let start = rng.range(0, dims[axis].saturating_sub(1)) as i64;
        let end = rng.pick(&[i64::MAX, -1, start + 1]);
        let st = |v: i64| Some(Tensor::from_vec(vec![1], &[v]).unwrap());
        run_case(
            &format!("slice case {i}"),
            one_op(
                Op::Slice(ops::Slice {}),
                std::slice::from_ref(&dims),
                vec![st(start), st(end), st(axis as i64), st(1)],
                1,
            ),
            &mut rng,
            EXACT,
            &mut t,
        );

        let n = dims[axis] as i64;
        let idx: Vec<i64> = (0..rng.range(1, 4))
            .map(|_| rng.range(0, (2 * n - 1) as usize) as i64 - n)
            .collect();
        let idx_t = Some(Tensor::from_vec(vec![idx.len()], &idx).unwrap());
        run_case(
            &format!("gather case {i}"),
            one_op(
                Op::Gather(ops::Gather { axis: axis as i64 }),
                std::slice::from_ref(&dims),
                vec![idx_t],
                1,
            ),
            &mut rng,
            EXACT,
            &mut t,
        );
    }
    eprintln!(
        "pool/reduce/movement: {} compared, {} skipped by tract",
        t.compared, t.tract_skipped
    );
    assert!(t.failures.is_empty(), "{}", t.failures.join("\n"));
}
