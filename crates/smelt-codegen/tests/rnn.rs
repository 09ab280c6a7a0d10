//! LSTM and GRU against step-by-step f64 recurrences written in the test (ONNX equations).

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op};

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// out[j] = Σ_k m[j][k] v[k] for a row-major [rows, cols] matrix.
fn mv(m: &[f32], v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    (0..rows)
        .map(|j| (0..cols).map(|k| m[j * cols + k] as f64 * v[k]).sum())
        .collect()
}

struct Dims {
    seq: usize,
    batch: usize,
    inp: usize,
    hid: usize,
    dirs: usize,
}

#[allow(clippy::too_many_arguments)]
fn lstm_ref(
    d: &Dims,
    x: &[f32],
    w: &[f32],
    r: &[f32],
    b: &[f32],
    h0: &[f32],
    c0: &[f32],
    p: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (s, n, i_n, h) = (d.seq, d.batch, d.inp, d.hid);
    let mut y = vec![0f32; s * d.dirs * n * h];
    let mut yh = vec![0f32; d.dirs * n * h];
    let mut yc = vec![0f32; d.dirs * n * h];
    for dir in 0..d.dirs {
        let wd = &w[dir * 4 * h * i_n..];
        let rd = &r[dir * 4 * h * h..];
        let bd = &b[dir * 8 * h..];
        let pd = &p[dir * 3 * h..];
        for bi in 0..n {
            let mut hv: Vec<f64> = (0..h).map(|j| h0[(dir * n + bi) * h + j] as f64).collect();
            let mut cv: Vec<f64> = (0..h).map(|j| c0[(dir * n + bi) * h + j] as f64).collect();
            for step in 0..s {
                let t = if dir == 1 { s - 1 - step } else { step };
                let xt: Vec<f64> = (0..i_n).map(|k| x[(t * n + bi) * i_n + k] as f64).collect();
                let gx = mv(wd, &xt, 4 * h, i_n);
                let gh = mv(rd, &hv, 4 * h, h);
                let g = |k: usize, j: usize| {
                    gx[k * h + j]
                        + gh[k * h + j]
                        + bd[k * h + j] as f64
                        + bd[4 * h + k * h + j] as f64
                };
                let mut hn = vec![0.0; h];
                for j in 0..h {
                    let ig = sig(g(0, j) + pd[j] as f64 * cv[j]);
                    let fg = sig(g(2, j) + pd[2 * h + j] as f64 * cv[j]);
                    let cg = g(3, j).tanh();
                    let c = fg * cv[j] + ig * cg;
                    let og = sig(g(1, j) + pd[h + j] as f64 * c);
                    cv[j] = c;
                    hn[j] = og * c.tanh();
                }
                hv = hn;
                for j in 0..h {
                    y[((t * d.dirs + dir) * n + bi) * h + j] = hv[j] as f32;
                }
            }
            for j in 0..h {
                yh[(dir * n + bi) * h + j] = hv[j] as f32;
                yc[(dir * n + bi) * h + j] = cv[j] as f32;
            }
        }
    }
    (y, yh, yc)
}

#[test]
fn bidirectional_lstm_with_peepholes_and_initial_states() {
    let d = Dims {
        seq: 4,
        batch: 2,
        inp: 3,
        hid: 5,
        dirs: 2,
    };
    let x = rand(d.seq * d.batch * d.inp, 71, -1.0, 1.0);
    let w = rand(d.dirs * 4 * d.hid * d.inp, 72, -0.5, 0.5);
    let r = rand(d.dirs * 4 * d.hid * d.hid, 73, -0.5, 0.5);
    let b = rand(d.dirs * 8 * d.hid, 74, -0.5, 0.5);
    let h0 = rand(d.dirs * d.batch * d.hid, 75, -0.5, 0.5);
    let c0 = rand(d.dirs * d.batch * d.hid, 76, -0.5, 0.5);
    let p = rand(d.dirs * 3 * d.hid, 77, -0.5, 0.5);
    let mut g = G::new();
    let xi = g.input("x", DType::F32, &[d.seq, d.batch, d.inp]);
    let wi = g.cf32(&[d.dirs, 4 * d.hid, d.inp], &w);
    let ri = g.cf32(&[d.dirs, 4 * d.hid, d.hid], &r);
    let bi = g.cf32(&[d.dirs, 8 * d.hid], &b);
    let hi = g.input("h0", DType::F32, &[d.dirs, d.batch, d.hid]);
    let ci = g.input("c0", DType::F32, &[d.dirs, d.batch, d.hid]);
    let pi = g.cf32(&[d.dirs, 3 * d.hid], &p);
    let outs = g.node_n(
        Op::LSTM(ops::LSTM {
            activation_alpha: None,
            activation_beta: None,
            activations: None,
            clip: None,
            direction: "bidirectional".into(),
            hidden_size: Some(d.hid as i64),
            input_forget: 0,
            layout: 0,
        }),
        &[
            Some(xi),
            Some(wi),
            Some(ri),
            Some(bi),
            None,
            Some(hi),
            Some(ci),
            Some(pi),
        ],
        3,
    );
    let gr = g.finish(&outs);
    let out = run(
        &gr,
        &[
            t32(&[d.seq, d.batch, d.inp], &x),
            t32(&[d.dirs, d.batch, d.hid], &h0),
            t32(&[d.dirs, d.batch, d.hid], &c0),
        ],
    );
    let (y, yh, yc) = lstm_ref(&d, &x, &w, &r, &b, &h0, &c0, &p);
    assert_eq!(out[0].dims(), &[d.seq, d.dirs, d.batch, d.hid]);
    close(&f32s(&out[0]), &y, 1e-4, 1e-5);
    close(&f32s(&out[1]), &yh, 1e-4, 1e-5);
    close(&f32s(&out[2]), &yc, 1e-4, 1e-5);
}

fn gru_ref(
    d: &Dims,
    x: &[f32],
    w: &[f32],
    r: &[f32],
    b: &[f32],
    lbr: bool,
    reverse: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (s, n, i_n, h) = (d.seq, d.batch, d.inp, d.hid);
    let mut y = vec![0f32; s * n * h];
    let mut yh = vec![0f32; n * h];
    for bi in 0..n {
        let mut hv = vec![0f64; h];
        for step in 0..s {
            let t = if reverse { s - 1 - step } else { step };
            let xt: Vec<f64> = (0..i_n).map(|k| x[(t * n + bi) * i_n + k] as f64).collect();
            let gx = mv(w, &xt, 3 * h, i_n);
            let gh = mv(r, &hv, 3 * h, h);
            let wb = |k: usize, j: usize| b[k * h + j] as f64;
            let rb = |k: usize, j: usize| b[3 * h + k * h + j] as f64;
            let z: Vec<f64> = (0..h)
                .map(|j| sig(gx[j] + gh[j] + wb(0, j) + rb(0, j)))
                .collect();
            let rg: Vec<f64> = (0..h)
                .map(|j| sig(gx[h + j] + gh[h + j] + wb(1, j) + rb(1, j)))
                .collect();
            let hh: Vec<f64> = if lbr {
                (0..h)
                    .map(|j| (gx[2 * h + j] + wb(2, j) + rg[j] * (gh[2 * h + j] + rb(2, j))).tanh())
                    .collect()
            } else {
                let rhv: Vec<f64> = (0..h).map(|j| rg[j] * hv[j]).collect();
                let rr = mv(&r[2 * h * h..], &rhv, h, h);
                (0..h)
                    .map(|j| (gx[2 * h + j] + rr[j] + rb(2, j) + wb(2, j)).tanh())
                    .collect()
            };
            hv = (0..h)
                .map(|j| (1.0 - z[j]) * hh[j] + z[j] * hv[j])
                .collect();
            for j in 0..h {
                y[(t * n + bi) * h + j] = hv[j] as f32;
            }
        }
        for j in 0..h {
            yh[bi * h + j] = hv[j] as f32;
        }
    }
    (y, yh)
}

#[test]
fn gru_forward_and_reverse_with_and_without_linear_before_reset() {
    let d = Dims {
        seq: 5,
        batch: 3,
        inp: 4,
        hid: 6,
        dirs: 1,
    };
    let x = rand(d.seq * d.batch * d.inp, 81, -1.0, 1.0);
    let w = rand(3 * d.hid * d.inp, 82, -0.5, 0.5);
    let r = rand(3 * d.hid * d.hid, 83, -0.5, 0.5);
    let b = rand(6 * d.hid, 84, -0.5, 0.5);
    for lbr in [false, true] {
        for reverse in [false, true] {
            let mut g = G::new();
            let xi = g.input("x", DType::F32, &[d.seq, d.batch, d.inp]);
            let wi = g.cf32(&[1, 3 * d.hid, d.inp], &w);
            let ri = g.cf32(&[1, 3 * d.hid, d.hid], &r);
            let bi = g.cf32(&[1, 6 * d.hid], &b);
            let outs = g.node_n(
                Op::GRU(ops::GRU {
                    activation_alpha: None,
                    activation_beta: None,
                    activations: None,
                    clip: None,
                    direction: if reverse { "reverse" } else { "forward" }.into(),
                    hidden_size: Some(d.hid as i64),
                    layout: 0,
                    linear_before_reset: lbr as i64,
                }),
                &[Some(xi), Some(wi), Some(ri), Some(bi)],
                2,
            );
            let gr = g.finish(&outs);
            let out = run(&gr, &[t32(&[d.seq, d.batch, d.inp], &x)]);
            let (y, yh) = gru_ref(&d, &x, &w, &r, &b, lbr, reverse);
            close(&f32s(&out[0]), &y, 1e-4, 1e-5);
            close(&f32s(&out[1]), &yh, 1e-4, 1e-5);
        }
    }
}
