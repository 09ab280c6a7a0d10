//! Pooling, reductions, softmax and normalisations against references computed in the test.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

#[test]
fn max_and_average_pool_with_pads_and_ceil_mode() {
    let (h, w) = (7, 9);
    let x = rand(2 * h * w, 31, -1.0, 1.0);
    // 3x3 window, stride 2, pads 1 on every side.
    for (max, include, ceil) in [
        (true, false, false),
        (false, false, false),
        (false, true, false),
        (true, false, true),
        (false, true, true),
    ] {
        let mut g = G::new();
        let xi = g.input("x", DType::F32, &[1, 2, h, w]);
        let op = if max {
            Op::MaxPool(ops::MaxPool {
                auto_pad: "NOTSET".into(),
                ceil_mode: ceil as i64,
                dilations: None,
                kernel_shape: vec![3, 3],
                pads: Some(vec![1, 1, 1, 1]),
                storage_order: 0,
                strides: Some(vec![2, 2]),
            })
        } else {
            Op::AveragePool(ops::AveragePool {
                auto_pad: "NOTSET".into(),
                ceil_mode: ceil as i64,
                count_include_pad: include as i64,
                dilations: None,
                kernel_shape: vec![3, 3],
                pads: Some(vec![1, 1, 1, 1]),
                strides: Some(vec![2, 2]),
            })
        };
        let y = g.node(op, &[xi]);
        let gr = g.finish(&[y]);
        let out = run(&gr, &[t32(&[1, 2, h, w], &x)]);
        let ext = |n: usize| {
            let num = n + 2 - 3;
            if ceil {
                num.div_ceil(2) + 1
            } else {
                num / 2 + 1
            }
        };
        let (oh, ow) = (ext(h), ext(w));
        assert_eq!(out[0].dims(), &[1, 2, oh, ow]);
        let mut want = vec![];
        for c in 0..2 {
            for i in 0..oh {
                for j in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    let mut s = 0.0f64;
                    let mut cnt = 0;
                    let mut cnt_pad = 0;
                    for a in 0..3 {
                        for b in 0..3 {
                            let y = (i * 2 + a) as i64 - 1;
                            let z = (j * 2 + b) as i64 - 1;
                            // Positions inside input + pads count for count_include_pad.
                            if y < h as i64 + 1 && z < w as i64 + 1 {
                                cnt_pad += 1;
                            }
                            if y < 0 || z < 0 || y >= h as i64 || z >= w as i64 {
                                continue;
                            }
                            let v = x[(c * h + y as usize) * w + z as usize];
                            m = m.max(v);
                            s += v as f64;
                            cnt += 1;
                        }
                    }
                    want.push(if max {
                        m
                    } else if include {
                        (s / cnt_pad as f64) as f32
                    } else {
                        (s / cnt as f64) as f32
                    });
                }
            }
        }
        close(&f32s(&out[0]), &want, 1e-6, 1e-7);
    }
}

#[test]
fn global_pools() {
    let x = rand(3 * 2 * 5 * 7, 32, -1.0, 1.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[3, 2, 5, 7]);
    let a = g.node(Op::GlobalAveragePool(ops::GlobalAveragePool {}), &[xi]);
    let m = g.node(Op::GlobalMaxPool(ops::GlobalMaxPool {}), &[xi]);
    let gr = g.finish(&[a, m]);
    let out = run(&gr, &[t32(&[3, 2, 5, 7], &x)]);
    assert_eq!(out[0].dims(), &[3, 2, 1, 1]);
    let avg: Vec<f32> = x
        .chunks(35)
        .map(|c| (c.iter().map(|v| *v as f64).sum::<f64>() / 35.0) as f32)
        .collect();
    let mx: Vec<f32> = x
        .chunks(35)
        .map(|c| c.iter().cloned().fold(f32::NEG_INFINITY, f32::max))
        .collect();
    close(&f32s(&out[0]), &avg, 1e-6, 1e-7);
    close(&f32s(&out[1]), &mx, 0.0, 0.0);
}

#[test]
fn reductions_over_inner_and_outer_axes() {
    let x = rand(2 * 3 * 5, 33, 0.1, 2.0);
    let at = |i: usize, j: usize, k: usize| x[(i * 3 + j) * 5 + k] as f64;
    for axes in [vec![2i64], vec![1], vec![0, 2], vec![-1, -2]] {
        let mut g = G::new();
        let xi = g.input("x", DType::F32, &[2, 3, 5]);
        let ax = g.ci64(&axes);
        let outs: Vec<_> = [
            Op::ReduceSum(ops::ReduceSum {
                keepdims: 1,
                noop_with_empty_axes: 0,
            }),
            Op::ReduceMean(ops::ReduceMean {
                keepdims: 0,
                noop_with_empty_axes: 0,
            }),
            Op::ReduceMax(ops::ReduceMax {
                keepdims: 1,
                noop_with_empty_axes: 0,
            }),
            Op::ReduceL2(ops::ReduceL2 {
                keepdims: 1,
                noop_with_empty_axes: 0,
            }),
            Op::ReduceLogSumExp(ops::ReduceLogSumExp {
                keepdims: 1,
                noop_with_empty_axes: 0,
            }),
        ]
        .into_iter()
        .map(|op| g.node(op, &[xi, ax]))
        .collect();
        let gr = g.finish(&outs);
        let out = run(&gr, &[t32(&[2, 3, 5], &x)]);
        let red: Vec<usize> = axes.iter().map(|a| a.rem_euclid(3) as usize).collect();
        let dims = [2usize, 3, 5];
        let mut groups: std::collections::BTreeMap<Vec<usize>, Vec<f64>> = Default::default();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..5 {
                    let idx = [i, j, k];
                    let key: Vec<usize> = (0..3)
                        .map(|d| if red.contains(&d) { 0 } else { idx[d] })
                        .collect();
                    groups.entry(key).or_default().push(at(i, j, k));
                }
            }
        }
        let _ = dims;
        let vals: Vec<&Vec<f64>> = groups.values().collect();
        let sum: Vec<f32> = vals.iter().map(|v| v.iter().sum::<f64>() as f32).collect();
        let mean: Vec<f32> = vals
            .iter()
            .map(|v| (v.iter().sum::<f64>() / v.len() as f64) as f32)
            .collect();
        let max: Vec<f32> = vals
            .iter()
            .map(|v| v.iter().cloned().fold(f64::MIN, f64::max) as f32)
            .collect();
        let l2: Vec<f32> = vals
            .iter()
            .map(|v| v.iter().map(|x| x * x).sum::<f64>().sqrt() as f32)
            .collect();
        let lse: Vec<f32> = vals
            .iter()
            .map(|v| v.iter().map(|x| x.exp()).sum::<f64>().ln() as f32)
            .collect();
        close(&f32s(&out[0]), &sum, 1e-6, 1e-6);
        close(&f32s(&out[1]), &mean, 1e-6, 1e-6);
        close(&f32s(&out[2]), &max, 0.0, 0.0);
        close(&f32s(&out[3]), &l2, 1e-6, 1e-6);
        close(&f32s(&out[4]), &lse, 1e-6, 1e-6);
    }
}

#[test]
fn argmax_and_argmin() {
    let x = [1.0f32, 5.0, 5.0, 2.0, -1.0, 0.0, -1.0, 3.0];
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 4]);
    let a = g.node(
        Op::ArgMax(ops::ArgMax {
            axis: 1,
            keepdims: 1,
            select_last_index: 0,
        }),
        &[xi],
    );
    let b = g.node(
        Op::ArgMax(ops::ArgMax {
            axis: 1,
            keepdims: 0,
            select_last_index: 1,
        }),
        &[xi],
    );
    let c = g.node(
        Op::ArgMin(ops::ArgMin {
            axis: 0,
            keepdims: 1,
            select_last_index: 0,
        }),
        &[xi],
    );
    let gr = g.finish(&[a, b, c]);
    let out = run(&gr, &[t32(&[2, 4], &x)]);
    assert_eq!(out[0].to_i64_vec().unwrap(), vec![1, 3]);
    assert_eq!(out[1].to_i64_vec().unwrap(), vec![2, 3]);
    assert_eq!(out[2].to_i64_vec().unwrap(), vec![1, 1, 1, 0]);
}

fn softmax_ref(row: &[f32], log: bool) -> Vec<f32> {
    let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let s: f64 = row.iter().map(|v| (*v as f64 - m).exp()).sum();
    row.iter()
        .map(|v| {
            if log {
                (*v as f64 - m - s.ln()) as f32
            } else {
                ((*v as f64 - m).exp() / s) as f32
            }
        })
        .collect()
}

#[test]
fn softmax_and_log_softmax_on_last_and_middle_axes() {
    let x = rand(3 * 11, 34, -20.0, 20.0);
    for log in [false, true] {
        let mut g = G::new();
        let xi = g.input("x", DType::F32, &[3, 11]);
        let op = if log {
            Op::LogSoftmax(ops::LogSoftmax { axis: -1 })
        } else {
            Op::Softmax(ops::Softmax { axis: -1 })
        };
        let y = g.node(op, &[xi]);
        let op0 = if log {
            Op::LogSoftmax(ops::LogSoftmax { axis: 0 })
        } else {
            Op::Softmax(ops::Softmax { axis: 0 })
        };
        let y0 = g.node(op0, &[xi]);
        let gr = g.finish(&[y, y0]);
        let out = run(&gr, &[t32(&[3, 11], &x)]);
        let want: Vec<f32> = x.chunks(11).flat_map(|r| softmax_ref(r, log)).collect();
        close(&f32s(&out[0]), &want, 1e-5, 1e-6);
        // Along axis 0: columns.
        let mut want0 = vec![0f32; 33];
        for j in 0..11 {
            let col: Vec<f32> = (0..3).map(|i| x[i * 11 + j]).collect();
            for (i, v) in softmax_ref(&col, log).into_iter().enumerate() {
                want0[i * 11 + j] = v;
            }
        }
        close(&f32s(&out[1]), &want0, 1e-5, 1e-6);
    }
}

#[test]
fn batch_layer_and_instance_norm() {
    let x = rand(2 * 3 * 10, 35, -2.0, 2.0);
    let scale = [0.5f32, 1.5, -1.0];
    let bias = [0.1f32, -0.2, 0.3];
    let mean = [0.2f32, -0.1, 0.0];
    let var = [1.0f32, 0.25, 4.0];
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 3, 10]);
    let s = g.cf32(&[3], &scale);
    let b = g.cf32(&[3], &bias);
    let m = g.cf32(&[3], &mean);
    let v = g.cf32(&[3], &var);
    let bn = g.node(
        Op::BatchNormalization(ops::BatchNormalization {
            epsilon: 1e-5,
            momentum: 0.9,
            training_mode: 0,
        }),
        &[xi, s, b, m, v],
    );
    let inn = g.node(
        Op::InstanceNormalization(ops::InstanceNormalization { epsilon: 1e-5 }),
        &[xi, s, b],
    );
    let ls = g.cf32(&[10], &rand(10, 36, 0.5, 1.5));
    let lb = g.cf32(&[10], &rand(10, 37, -0.5, 0.5));
    let ln = g.node(
        Op::LayerNormalization(ops::LayerNormalization {
            axis: -1,
            epsilon: 1e-5,
            stash_type: 1,
        }),
        &[xi, ls, lb],
    );
    let gr = g.finish(&[bn, inn, ln]);
    let out = run(&gr, &[t32(&[2, 3, 10], &x)]);
    let lsv = rand(10, 36, 0.5, 1.5);
    let lbv = rand(10, 37, -0.5, 0.5);
    let mut w_bn = vec![];
    let mut w_in = vec![];
    let mut w_ln = vec![];
    for n in 0..2 {
        for c in 0..3 {
            let row: Vec<f64> = (0..10).map(|k| x[(n * 3 + c) * 10 + k] as f64).collect();
            for v in &row {
                w_bn.push(
                    ((v - mean[c] as f64) / (var[c] as f64 + 1e-5).sqrt() * scale[c] as f64
                        + bias[c] as f64) as f32,
                );
            }
            let mu = row.iter().sum::<f64>() / 10.0;
            let va = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / 10.0;
            for (k, v) in row.iter().enumerate() {
                let z = (v - mu) / (va + 1e-5).sqrt();
                w_in.push((z * scale[c] as f64 + bias[c] as f64) as f32);
                w_ln.push((z * lsv[k] as f64 + lbv[k] as f64) as f32);
            }
        }
    }
    close(&f32s(&out[0]), &w_bn, 1e-5, 1e-6);
    close(&f32s(&out[1]), &w_in, 1e-5, 1e-5);
    close(&f32s(&out[2]), &w_ln, 1e-5, 1e-5);
    let _ = Tensor::scalar(0f32);
}

#[test]
fn topk_sorted_with_ties_by_index() {
    let x = [3.0f32, 1.0, 3.0, 2.0, 5.0, -1.0, 0.0, 0.0, 0.0, 4.0];
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 5]);
    let k = g.ci64(&[3]);
    let big = g.node_n(
        Op::TopK(ops::TopK {
            axis: -1,
            largest: 1,
            sorted: 1,
        }),
        &[Some(xi), Some(k)],
        2,
    );
    let small = g.node_n(
        Op::TopK(ops::TopK {
            axis: 1,
            largest: 0,
            sorted: 1,
        }),
        &[Some(xi), Some(k)],
        2,
    );
    let gr = g.finish(&[big[0], big[1], small[0], small[1]]);
    let out = run(&gr, &[t32(&[2, 5], &x)]);
    assert_eq!(f32s(&out[0]), vec![5.0, 3.0, 3.0, 4.0, 0.0, 0.0]);
    assert_eq!(out[1].to_i64_vec().unwrap(), vec![4, 0, 2, 4, 1, 2]);
    assert_eq!(f32s(&out[2]), vec![1.0, 2.0, 3.0, -1.0, 0.0, 0.0]);
    assert_eq!(out[3].to_i64_vec().unwrap(), vec![1, 3, 0, 0, 1, 2]);
}

#[test]
fn lrn_across_channels() {
    let (c, hw) = (5usize, 6usize);
    let x = rand(c * hw, 52, -2.0, 2.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[1, c, 2, 3]);
    let y = g.node(
        Op::LRN(ops::LRN {
            alpha: 1e-3,
            beta: 0.75,
            bias: 2.0,
            size: 3,
        }),
        &[xi],
    );
    let gr = g.finish(&[y]);
    let out = run(&gr, &[t32(&[1, c, 2, 3], &x)]);
    let mut want = vec![];
    for ci in 0..c {
        for p in 0..hw {
            let mut s = 0.0f64;
            for cj in ci.saturating_sub(1)..=(ci + 1).min(c - 1) {
                s += (x[cj * hw + p] as f64).powi(2);
            }
            let v = x[ci * hw + p] as f64 / (2.0 + 1e-3 / 3.0 * s).powf(0.75);
            want.push(v as f32);
        }
    }
    close(&f32s(&out[0]), &want, 1e-5, 1e-6);
}

#[test]
fn legacy_softmax_flattens_at_axis() {
    // Opset < 13 Softmax with axis 1 on [2, 3, 2]: rows of 6.
    let x = rand(12, 91, -3.0, 3.0);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[2, 3, 2]);
    let y = g.node(
        Op::Opaque(smelt_ir::OpaqueOp {
            domain: String::new(),
            op_type: "Softmax".into(),
            attrs: vec![("axis".into(), smelt_ir::Attr::Int(1))],
        }),
        &[xi],
    );
    let mut gr = g.g;
    gr.set_outputs(vec![y]).unwrap();
    smelt_ir::infer::infer_graph(&mut gr).unwrap();
    let out = run(&gr, &[t32(&[2, 3, 2], &x)]);
    let want: Vec<f32> = x.chunks(6).flat_map(|r| softmax_ref(r, false)).collect();
    assert_eq!(out[0].dims(), &[2, 3, 2]);
    close(&f32s(&out[0]), &want, 1e-5, 1e-6);
}
