//! Gemm and MatMul against naive f64 products computed in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

/// C[m×n] = A·B for row-major matrices, in f64.
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for l in 0..k {
                c[i * n + j] += a[i * k + l] as f64 * b[l * n + j] as f64;
            }
        }
    }
    c
}

fn transpose(x: &[f32], r: usize, c: usize) -> Vec<f32> {
    let mut t = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            t[j * r + i] = x[i * c + j];
        }
    }
    t
}

#[test]
fn gemm_all_attribute_combinations_and_odd_sizes() {
    for &(m, k, n) in &[
        (1, 64, 10),
        (5, 7, 9),
        (4, 8, 8),
        (13, 3, 17),
        (2, 1, 3),
        (1, 33, 77),
        (2, 20, 70),
        (3, 9, 40),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                for const_b in [false, true] {
                    let a = rand(m * k, 3, -1.0, 1.0);
                    let b = rand(k * n, 4, -1.0, 1.0);
                    let c = rand(n, 5, -1.0, 1.0);
                    let a_in = if ta { transpose(&a, m, k) } else { a.clone() };
                    let b_in = if tb { transpose(&b, k, n) } else { b.clone() };
                    let a_dims = if ta { [k, m] } else { [m, k] };
                    let b_dims = if tb { [n, k] } else { [k, n] };
                    let mut g = G::new();
                    let ai = g.input("a", DType::F32, &a_dims);
                    let bi = if const_b {
                        g.cf32(&b_dims, &b_in)
                    } else {
                        g.input("b", DType::F32, &b_dims)
                    };
                    let ci = g.cf32(&[n], &c);
                    let y = g.node(
                        Op::Gemm(ops::Gemm {
                            alpha: 0.5,
                            beta: 2.0,
                            trans_a: ta,
                            trans_b: tb,
                        }),
                        &[ai, bi, ci],
                    );
                    let gr = g.finish(&[y]);
                    let mut ins = vec![t32(&a_dims, &a_in)];
                    if !const_b {
                        ins.push(t32(&b_dims, &b_in));
                    }
                    let got = f32s(&run(&gr, &ins)[0]);
                    let ab = naive(&a, &b, m, k, n);
                    let want: Vec<f32> = (0..m * n)
                        .map(|i| (0.5 * ab[i] + 2.0 * c[i % n] as f64) as f32)
                        .collect();
                    close(&got, &want, 1e-5, 1e-5);
                }
            }
        }
    }
}

#[test]
fn matmul_batched_broadcast_and_vectors() {
    // [2,1,3,5] x [4,5,6] -> [2,4,3,6]
    let a = rand(2 * 3 * 5, 8, -1.0, 1.0);
    let b = rand(4 * 5 * 6, 9, -1.0, 1.0);
    for const_b in [false, true] {
        let mut g = G::new();
        let ai = g.input("a", DType::F32, &[2, 1, 3, 5]);
        let bi = if const_b {
            g.cf32(&[4, 5, 6], &b)
        } else {
            g.input("b", DType::F32, &[4, 5, 6])
        };
        let y = g.node(Op::MatMul(ops::MatMul {}), &[ai, bi]);
        let gr = g.finish(&[y]);
        let mut ins = vec![t32(&[2, 1, 3, 5], &a)];
        if !const_b {
            ins.push(t32(&[4, 5, 6], &b));
        }
        let out = run(&gr, &ins);
        assert_eq!(out[0].dims(), &[2, 4, 3, 6]);
        let got = f32s(&out[0]);
        let mut want = vec![];
        for i in 0..2 {
            for j in 0..4 {
                let c = naive(&a[i * 15..(i + 1) * 15], &b[j * 30..(j + 1) * 30], 3, 5, 6);
                want.extend(c.iter().map(|v| *v as f32));
            }
        }
        close(&got, &want, 1e-5, 1e-5);
    }
    // Vector · matrix and matrix · vector.
    let v = rand(5, 10, -1.0, 1.0);
    let mut g = G::new();
    let vi = g.input("v", DType::F32, &[5]);
    let mi = g.input("m", DType::F32, &[5, 6]);
    let ni = g.input("n", DType::F32, &[6, 5]);
    let y1 = g.node(Op::MatMul(ops::MatMul {}), &[vi, mi]);
    let y2 = g.node(Op::MatMul(ops::MatMul {}), &[ni, vi]);
    let gr = g.finish(&[y1, y2]);
    let mv = rand(30, 11, -1.0, 1.0);
    let out = run(&gr, &[t32(&[5], &v), t32(&[5, 6], &mv), t32(&[6, 5], &mv)]);
    assert_eq!(out[0].dims(), &[6]);
    assert_eq!(out[1].dims(), &[6]);
    let w1: Vec<f32> = naive(&v, &mv, 1, 5, 6).iter().map(|x| *x as f32).collect();
    let w2: Vec<f32> = naive(&mv, &v, 6, 5, 1).iter().map(|x| *x as f32).collect();
    close(&f32s(&out[0]), &w1, 1e-5, 1e-6);
    close(&f32s(&out[1]), &w2, 1e-5, 1e-6);
}

/// f64 MatMul with broadcast batch dims against a triple loop in the test.
#[test]
fn f64_matmul_broadcasts_batches() {
    let (m, k, n) = (3usize, 4usize, 2usize);
    let a: Vec<f64> = (0..2 * m * k).map(|i| (i as f64 * 0.37).sin()).collect();
    let b: Vec<f64> = (0..5 * k * n).map(|i| (i as f64 * 0.11).cos()).collect();
    let mut g = G::new();
    let ai = g.input("a", DType::F64, &[2, 1, m, k]);
    let bi = g.input("b", DType::F64, &[5, k, n]);
    let y = g.node(Op::MatMul(ops::MatMul {}), &[ai, bi]);
    let gr = g.finish(&[y]);
    let out = run(
        &gr,
        &[
            Tensor::from_vec(vec![2, 1, m, k], &a).unwrap(),
            Tensor::from_vec(vec![5, k, n], &b).unwrap(),
        ],
    );
    assert_eq!(out[0].dims(), &[2, 5, m, n]);
    let got = out[0].to_f64_vec().unwrap();
    for p in 0..2 {
        for q in 0..5 {
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k)
                        .map(|t| a[(p * m + i) * k + t] * b[(q * k + t) * n + j])
                        .sum();
                    let g = got[((p * 5 + q) * m + i) * n + j];
                    assert!((g - want).abs() < 1e-12, "{g} vs {want}");
                }
            }
        }
    }
}

/// A Relu or Clip fused into the product keeps NaN (ONNX: `max(NaN, 0)` is NaN) and clamps
/// everything else; hand-checked values.
#[test]
fn fused_activations_keep_nan_and_clamp() {
    for (act, want) in [
        (
            Op::Relu(ops::Relu {}),
            [f32::NAN, 0.0, 2.5, 0.0, 7.0, 0.0, 0.0, 1.0],
        ),
        (
            Op::Clip(ops::Clip {}),
            [f32::NAN, -1.0, 2.5, -0.5, 6.0, -1.0, 0.0, 1.0],
        ),
    ] {
        let mut g = G::new();
        let x = g.input("x", DType::F32, &[1, 8]);
        // Identity weights: the product passes x through, the activation does the rest.
        let mut eye = vec![0f32; 64];
        for i in 0..8 {
            eye[i * 8 + i] = 1.0;
        }
        let w = g.cf32(&[8, 8], &eye);
        // The NaN comes in through Gemm's C (through x it would reach every output: NaN * 0).
        let mut c = vec![0f32; 8];
        c[0] = f32::NAN;
        let c = g.cf32(&[8], &c);
        let y = g.node(
            Op::Gemm(ops::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: false,
            }),
            &[x, w, c],
        );
        let z = if matches!(act, Op::Clip(_)) {
            let lo = g.cf32(&[], &[-1.0]);
            let hi = g.cf32(&[], &[6.0]);
            g.node(act, &[y, lo, hi])
        } else {
            g.node(act, &[y])
        };
        let gr = g.finish(&[z]);
        let x = t32(&[1, 8], &[4.0, -3.0, 2.5, -0.5, 7.0, -9.0, 0.0, 1.0]);
        let got = f32s(&run(&gr, &[x])[0]);
        assert!(
            got[0].is_nan(),
            "NaN must survive the fused activation: {got:?}"
        );
        assert_eq!(&got[1..], &want[1..]);
    }
}

/// Equal columns stay bitwise equal: every block of a product sums in the same order
/// (constant-filled weights, as in the ONNX light models, make all 1,000 logits tie).
#[test]
fn equal_columns_give_bitwise_equal_outputs() {
    for (k, n) in [(2048usize, 1000usize), (96, 37), (512, 10)] {
        let mut g = G::new();
        let x = g.input("x", DType::F32, &[1, k]);
        let w = g.cf32(&[k, n], &vec![0.02; k * n]);
        let y = g.node(Op::MatMul(ops::MatMul {}), &[x, w]);
        let gr = g.finish(&[y]);
        let xs = rand(k, 7, -1.0, 1.0);
        let got = f32s(&run(&gr, &[t32(&[1, k], &xs)])[0]);
        assert!(
            got.iter().all(|v| v.to_bits() == got[0].to_bits()),
            "k={k} n={n}: {:?}",
            &got[got.len().saturating_sub(10)..]
        );
    }
}
