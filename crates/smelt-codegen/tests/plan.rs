//! The memory plan: arena close to the peak of live bytes, reuse that never clobbers a live
//! value (checked by running graphs with many intermediates against references), and the
//! plan's text form as a snapshot.

mod common;
use common::*;
use smelt_codegen::jit::{compile, Options};
use smelt_ir::ops;
use smelt_ir::{DType, Graph, Op};

/// An MLP: Gemm + Relu layers of varying widths.
fn mlp(widths: &[usize]) -> (Graph, Vec<Vec<f32>>) {
    let mut g = G::new();
    let mut x = g.input("x", DType::F32, &[1, widths[0]]);
    let mut ws = vec![];
    for (i, w) in widths.windows(2).enumerate() {
        let wt = rand(w[0] * w[1], 100 + i as u64, -0.3, 0.3);
        let wi = g.cf32(&[w[1], w[0]], &wt);
        ws.push(wt);
        let b = g.cf32(&[w[1]], &vec![0.01; w[1]]);
        let y = g.node(
            Op::Gemm(ops::Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
            }),
            &[x, wi, b],
        );
        x = g.node(Op::Relu(ops::Relu {}), &[y]);
    }
    (g.finish(&[x]), ws)
}

/// A residual chain: y_{k+1} = relu(y_k * a_k + y_{k-1}), with a side branch kept alive.
fn residual(n: usize, len: usize) -> Graph {
    let mut g = G::new();
    let x = g.input("x", DType::F32, &[len]);
    let mut prev = x;
    let mut cur = g.node(Op::Neg(ops::Neg {}), &[x]);
    let keep = g.node(Op::Abs(ops::Abs {}), &[x]);
    for k in 0..n {
        let a = g.cf32(&[1], &[0.5 + k as f32 * 0.1]);
        let m = g.node(Op::Mul(ops::Mul {}), &[cur, a]);
        let s = g.node(Op::Add(ops::Add {}), &[m, prev]);
        let r = g.node(Op::Tanh(ops::Tanh {}), &[s]);
        prev = cur;
        cur = r;
    }
    let out = g.node(Op::Add(ops::Add {}), &[cur, keep]);
    g.finish(&[out])
}

fn residual_ref(n: usize, x: &[f32]) -> Vec<f32> {
    let mut prev: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    let mut cur: Vec<f64> = prev.iter().map(|v| -v).collect();
    for k in 0..n {
        let a = (0.5 + k as f32 * 0.1) as f64;
        let next: Vec<f64> = cur
            .iter()
            .zip(&prev)
            .map(|(c, p)| (c * a + p).tanh())
            .collect();
        prev = cur;
        cur = next;
    }
    cur.iter()
        .zip(x)
        .map(|(c, x)| (c + x.abs() as f64) as f32)
        .collect()
}

fn assert_tight(g: &Graph) {
    let m = compile(g, &Options::default()).unwrap();
    let p = m.plan();
    assert!(
        p.arena_bytes as f64 <= 1.1 * p.lower_bound as f64,
        "arena {} > 1.1 x lower bound {}\n{p}",
        p.arena_bytes,
        p.lower_bound
    );
    assert!(p.arena_bytes <= p.naive_bytes);
}

#[test]
fn arena_is_within_10_percent_of_peak_live_bytes() {
    assert_tight(&mlp(&[64, 128, 96, 300, 10]).0);
    assert_tight(&mlp(&[17, 1000, 3, 500, 500, 7]).0);
    assert_tight(&residual(12, 1000));
    assert_tight(&residual(5, 37));
}

#[test]
fn reuse_and_in_place_never_clobber_live_values() {
    for (n, len) in [(12, 1000), (3, 5)] {
        let g = residual(n, len);
        let x = rand(len, 41, -2.0, 2.0);
        let got = f32s(&run(&g, &[t32(&[len], &x)])[0]);
        close(&got, &residual_ref(n, &x), 1e-5, 1e-6);
    }
    let (g, ws) = mlp(&[8, 16, 4]);
    let x = rand(8, 42, -1.0, 1.0);
    let got = f32s(&run(&g, &[t32(&[1, 8], &x)])[0]);
    let mut h: Vec<f64> = x.iter().map(|v| *v as f64).collect();
    for (wt, (i, o)) in ws.iter().zip([(8usize, 16usize), (16, 4)]) {
        h = (0..o)
            .map(|j| {
                let s: f64 = (0..i).map(|k| h[k] * wt[j * i + k] as f64).sum();
                (s + 0.01f32 as f64).max(0.0)
            })
            .collect();
    }
    let want: Vec<f32> = h.iter().map(|v| *v as f32).collect();
    close(&got, &want, 1e-5, 1e-6);
}

#[test]
fn plan_without_compiling_matches_the_compiled_plan() {
    let g = residual(3, 64);
    let p = smelt_codegen::plan(&g, &Options::default()).unwrap();
    let m = compile(&g, &Options::default()).unwrap();
    assert_eq!(p.to_string(), m.plan().to_string());
}

#[test]
fn plan_text_snapshot() {
    let m = compile(&residual(2, 100), &Options::default()).unwrap();
    insta::with_settings!({snapshot_path => "../../../snapshots/smelt-codegen"}, {
        insta::assert_snapshot!("residual_plan", m.plan().to_string());
    });
}
