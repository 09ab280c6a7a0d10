//! `merge` tests: hand-built members, the merged graph run by the reference evaluator and
//! compared with the members' outputs combined by hand.

use super::*;
use crate::eval::run_graph;
use crate::testutil::{op, B};
use smelt_ir::Attr;

/// Deterministic values in [-1, 1).
fn rnd(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// An MLP `in-h-…-out` with Gemm(transB=1)+Relu layers, weights from `seed`.
fn mlp(dims: &[usize], seed: u64) -> Model {
    let mut b = B::new();
    let mut h = b.input("input", DType::F32, &[1, dims[0]]);
    for i in 1..dims.len() {
        let (k, o) = (dims[i - 1], dims[i]);
        let w = b.c(
            &format!("fc{i}.weight"),
            &[o, k],
            &rnd(seed * 100 + i as u64, o * k),
        );
        let bias = b.c(
            &format!("fc{i}.bias"),
            &[o],
            &rnd(seed * 100 + 50 + i as u64, o),
        );
        let name = if i + 1 == dims.len() {
            "logits".to_string()
        } else {
            format!("h{i}")
        };
        h = b.op(
            &name,
            op("Gemm", &[("transB", Attr::Int(1))]),
            &[h, w, bias],
        );
        if i + 1 < dims.len() {
            h = b.op(&format!("a{i}"), op("Relu", &[]), &[h]);
        }
    }
    Model::new(b.finish(&[h]), 17)
}

/// A CNN: Conv(1->c, 3x3, pad 1) Relu Conv(c->c, 3x3, pad 1) Relu Flatten Gemm(->10).
fn cnn(c: usize, seed: u64) -> Model {
    let mut b = B::new();
    let x = b.input("input", DType::F32, &[1, 1, 4, 4]);
    let conv = || {
        op(
            "Conv",
            &[
                ("kernel_shape", Attr::Ints(vec![3, 3])),
                ("pads", Attr::Ints(vec![1, 1, 1, 1])),
            ],
        )
    };
    let w1 = b.c("conv1.weight", &[c, 1, 3, 3], &rnd(seed * 10 + 1, c * 9));
    let b1 = b.c("conv1.bias", &[c], &rnd(seed * 10 + 2, c));
    let h = b.op("c1", conv(), &[x, w1, b1]);
    let h = b.op("r1", op("Relu", &[]), &[h]);
    let w2 = b.c(
        "conv2.weight",
        &[c, c, 3, 3],
        &rnd(seed * 10 + 3, c * c * 9),
    );
    let b2 = b.c("conv2.bias", &[c], &rnd(seed * 10 + 4, c));
    let h = b.op("c2", conv(), &[h, w2, b2]);
    let h = b.op("r2", op("Relu", &[]), &[h]);
    let h = b.op("flat", op("Flatten", &[]), &[h]);
    let w3 = b.c("fc.weight", &[10, c * 16], &rnd(seed * 10 + 5, 10 * c * 16));
    let b3 = b.c("fc.bias", &[10], &rnd(seed * 10 + 6, 10));
    let y = b.op(
        "logits",
        op("Gemm", &[("transB", Attr::Int(1))]),
        &[h, w3, b3],
    );
    Model::new(b.finish(&[y]), 17)
}

fn run(g: &Graph, x: &Tensor) -> Vec<f64> {
    run_graph(g, std::slice::from_ref(x), false).unwrap().0[0]
        .to_f64_vec()
        .unwrap()
}

fn input_for(m: &Model, seed: u64) -> Tensor {
    let g = &m.graph;
    let dims = g.value_type(g.inputs()[0]).static_dims().unwrap();
    let n: usize = dims.iter().product();
    let v: Vec<f32> = rnd(seed, n).iter().map(|x| x.abs()).collect();
    Tensor::from_vec(dims, &v).unwrap()
}

/// Merges, checks the merged graph against Σ wᵢ yᵢ of the members (after `f`) on a few inputs.
fn check_combination(
    members: &[Model],
    opts: &MergeOptions,
    f: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) -> (Model, MergeReport) {
    let (merged, report) = merge_models(members, opts).unwrap();
    smelt_ir::verify(&merged.graph).unwrap();
    for s in 0..3 {
        let x = input_for(&members[0], 1000 + s);
        let ys: Vec<Vec<f64>> = members.iter().map(|m| run(&m.graph, &x)).collect();
        let want = f(&ys);
        let got = run(&merged.graph, &x);
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{got:?} vs {want:?}\n{report}"
            );
        }
    }
    (merged, report)
}

fn weighted(ys: &[Vec<f64>], w: &[f64]) -> Vec<f64> {
    (0..ys[0].len())
        .map(|j| ys.iter().zip(w).map(|(y, w)| y[j] * w).sum())
        .collect()
}

fn count(g: &Graph, types: &[&str]) -> usize {
    g.node_ids()
        .iter()
        .filter(|id| types.contains(&g.node(**id).op.op_type()))
        .count()
}

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../../snapshots/smelt-passes")}, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn two_mlps_mean_fold_into_one_wide_network() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 2)];
    let (merged, report) = check_combination(&ms, &MergeOptions::default(), |ys| {
        weighted(ys, &[0.5, 0.5])
    });
    // One wide first layer, the combine folded into the last: as many Gemms as one member.
    assert_eq!(count(&merged.graph, &["Gemm"]), 2);
    assert_eq!(count(&merged.graph, &["Sum", "Add", "Mul"]), 0);
    assert_eq!(report.fused_groups, vec![vec![0, 1]]);
    snapshot("merge_two_mlps_mean", &merged.graph.to_text());
}

#[test]
fn three_layer_mlps_choose_block_diagonal_or_separate_by_cost() {
    let ms = [mlp(&[4, 5, 5, 3], 1), mlp(&[4, 5, 5, 3], 2)];
    let mut opts = MergeOptions {
        combine: Combine::Weighted,
        weights: Some(vec![1.0, 3.0]),
        ..MergeOptions::default()
    };
    let (merged, report) = check_combination(&ms, &opts, |ys| weighted(ys, &[1.0, 3.0]));
    assert_eq!(count(&merged.graph, &["Gemm"]), 3, "{report}");
    assert!(
        report.to_string().contains(": block-diagonal\n"),
        "{report}"
    );
    snapshot("merge_two_mlps_block_diagonal", &merged.graph.to_text());
    opts.node_cost = 0;
    let (merged, report) = check_combination(&ms, &opts, |ys| weighted(ys, &[1.0, 3.0]));
    assert!(report.to_string().contains(": separate\n"), "{report}");
    assert_eq!(count(&merged.graph, &["Gemm"]), 4, "{report}");
}

#[test]
fn two_cnns_merge_into_grouped_convs() {
    let ms = [cnn(3, 1), cnn(3, 2)];
    let (merged, report) = check_combination(&ms, &MergeOptions::default(), |ys| {
        weighted(ys, &[0.5, 0.5])
    });
    assert_eq!(count(&merged.graph, &["Conv"]), 2, "{report}");
    assert_eq!(count(&merged.graph, &["Gemm"]), 1, "{report}");
    assert!(report.to_string().contains("grouped, group 2"), "{report}");
    snapshot("merge_two_cnns_mean", &merged.graph.to_text());
}

#[test]
fn different_structures_stay_branches_joined_by_the_combine() {
    let ms = [
        mlp(&[4, 6, 3], 1),
        mlp(&[4, 6, 3], 2),
        mlp(&[4, 5, 5, 3], 3),
    ];
    let opts = MergeOptions {
        combine: Combine::Normalized,
        weights: Some(vec![1.0, 1.0, 2.0]),
        ..MergeOptions::default()
    };
    let (_, report) = check_combination(&ms, &opts, |ys| weighted(ys, &[0.25, 0.25, 0.5]));
    assert_eq!(report.branches, vec![2]);
}

#[test]
fn probabilities_softmax_each_member_first() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 2)];
    let opts = MergeOptions {
        probabilities: true,
        ..MergeOptions::default()
    };
    let softmax = |y: &Vec<f64>| {
        let m = y.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = y.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        e.iter().map(|v| v / s).collect::<Vec<f64>>()
    };
    check_combination(&ms, &opts, |ys| {
        let ps: Vec<Vec<f64>> = ys.iter().map(softmax).collect();
        weighted(&ps, &[0.5, 0.5])
    });
}

#[test]
fn shared_first_layer_is_computed_once() {
    let a = mlp(&[4, 6, 3], 1);
    let mut b = mlp(&[4, 6, 3], 2);
    // Member 1 shares member 0's first layer (frozen), not its head.
    for id in b.graph.node_ids() {
        let name = b.graph.value(ValueId::new(id, 0)).name.clone();
        if name.starts_with("fc1.") {
            let src = a.graph.values_by_name()[&name];
            b.graph.node_mut(id).op = a.graph.node(src.node).op.clone();
        }
    }
    let ms = [a, b];
    let (merged, report) = check_combination(&ms, &MergeOptions::default(), |ys| {
        weighted(ys, &[0.5, 0.5])
    });
    assert_eq!(count(&merged.graph, &["Gemm"]), 2, "{report}");
    assert!(report.to_string().contains("computed once"), "{report}");
    let consts: Vec<usize> = merged
        .graph
        .node_ids()
        .iter()
        .filter_map(|id| match &merged.graph.node(*id).op {
            Op::Const(t) => Some(t.len()),
            _ => None,
        })
        .collect();
    // fc1's weight (6 x 4) and bias (6) once; the heads fold into one (3 x 6) Gemm.
    assert_eq!(consts, vec![24, 6, 18, 3]);
}

#[test]
fn vote_counts_argmax_per_class_by_hand() {
    // Three one-layer members over x = [1, 0]: logits W x = W's first column.
    let member = |col: [f32; 3]| {
        let mut b = B::new();
        let x = b.input("input", DType::F32, &[1, 2]);
        let w = b.c("w", &[3, 2], &[col[0], 0.0, col[1], 0.0, col[2], 0.0]);
        let y = b.op("logits", op("Gemm", &[("transB", Attr::Int(1))]), &[x, w]);
        Model::new(b.finish(&[y]), 17)
    };
    // Argmaxes: class 2, class 0, class 2 (a tie between 0 and 2 goes to 0 within a member).
    let ms = [
        member([0.1, 0.2, 0.9]),
        member([0.5, 0.1, 0.5]),
        member([0.0, 0.3, 0.4]),
    ];
    let opts = MergeOptions {
        combine: Combine::Vote,
        ..MergeOptions::default()
    };
    let (merged, _) = merge_models(&ms, &opts).unwrap();
    let x = Tensor::from_vec(vec![1, 2], &[1.0f32, 0.0]).unwrap();
    assert_eq!(run(&merged.graph, &x), vec![1.0, 0.0, 2.0]);
    let opts = MergeOptions {
        combine: Combine::Vote,
        weights: Some(vec![1.0, 3.0, 1.0]),
        ..MergeOptions::default()
    };
    let (merged, _) = merge_models(&ms, &opts).unwrap();
    assert_eq!(run(&merged.graph, &x), vec![3.0, 0.0, 2.0]);
}

#[test]
fn soup_averages_the_parameters() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 2)];
    let calib = Tensor::from_vec(vec![5, 4], &rnd(7, 20)).unwrap();
    let opts = MergeOptions {
        combine: Combine::Soup,
        calib: Some(calib),
        ..MergeOptions::default()
    };
    let (merged, report) = merge_models(&ms, &opts).unwrap();
    let avg = |name: &str| {
        let v: Vec<Vec<f32>> = ms
            .iter()
            .map(|m| {
                let id = m.graph.values_by_name()[name];
                m.graph.const_value(id).unwrap().to_f32_vec().unwrap()
            })
            .collect();
        v[0].iter()
            .zip(&v[1])
            .map(|(a, b)| (a + b) / 2.0)
            .collect::<Vec<f32>>()
    };
    let got = merged.graph.values_by_name()["fc1.weight"];
    assert_eq!(
        merged.graph.const_value(got).unwrap().to_f32_vec().unwrap(),
        avg("fc1.weight")
    );
    assert!(report.warnings[0].contains("one initialisation"));
    let a = report.agreement.unwrap();
    assert_eq!((a.samples, a.members.len()), (5, 2));
}

#[test]
fn mismatched_inputs_are_named() {
    let a = mlp(&[4, 6, 3], 1);
    let b = mlp(&[5, 6, 3], 2);
    let e = merge_models(&[a.clone(), b], &MergeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("member 1 (m1): input `input` is f32[1,5] but f32[1,4]"),
        "{e}"
    );
    let c = mlp(&[4, 6, 4], 2);
    let e = merge_models(&[a.clone(), c], &MergeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("output 0 (`logits`)"), "{e}");
    let e = merge_models(
        &[a.clone(), a],
        &MergeOptions {
            combine: Combine::Weighted,
            ..MergeOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs weights"), "{e}");
}

#[test]
fn a_symbolic_batch_dim_still_fuses() {
    let member = |s: u64| {
        let src = format!(
            "graph m(input: f32[batch,4]) -> (logits: f32[batch,3]) {{
  %w1 = const f32[5,4] random(seed={s})
  %w2 = const f32[3,5] random(seed={})
  %h = Gemm(%input, %w1) {{transB=1}} : f32[batch,5]
  %a = Tanh(%h) : f32[batch,5]
  %logits = Gemm(%a, %w2) {{transB=1}} : f32[batch,3]
  return %logits
}}",
            s + 1
        );
        Model::new(
            Graph::from_text(&src, &smelt_ir::text::NoConsts).unwrap(),
            17,
        )
    };
    let ms = [member(1), member(3)];
    let (merged, report) = merge_models(&ms, &MergeOptions::default()).unwrap();
    assert_eq!(report.fused_groups, vec![vec![0, 1]]);
    let x = Tensor::from_vec(vec![2, 4], &rnd(5, 8)).unwrap();
    let ys: Vec<Vec<f64>> = ms.iter().map(|m| run(&m.graph, &x)).collect();
    let got = run(&merged.graph, &x);
    for (a, b) in got.iter().zip(weighted(&ys, &[0.5, 0.5])) {
        assert!((a - b).abs() < 1e-5, "{got:?}");
    }
}

#[test]
fn identical_members_are_computed_once() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 1)];
    let opts = MergeOptions {
        combine: Combine::Weighted,
        weights: Some(vec![1.0, 2.0]),
        ..MergeOptions::default()
    };
    let (merged, report) = check_combination(&ms, &opts, |ys| weighted(ys, &[1.0, 2.0]));
    assert_eq!(count(&merged.graph, &["Gemm"]), 2, "{report}");
    assert_eq!(count(&merged.graph, &["Mul"]), 1, "{report}");
}

#[test]
fn without_fusion_members_are_branches_with_the_same_outputs() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 2)];
    let opts = MergeOptions {
        fuse: false,
        ..MergeOptions::default()
    };
    let (merged, report) = check_combination(&ms, &opts, |ys| weighted(ys, &[0.5, 0.5]));
    assert_eq!(report.branches, vec![0, 1]);
    assert_eq!(count(&merged.graph, &["Gemm"]), 4);
}

#[test]
fn probabilities_of_fused_members_split_the_wide_output() {
    let ms = [mlp(&[4, 6, 3], 1), mlp(&[4, 6, 3], 2)];
    let opts = MergeOptions {
        probabilities: true,
        ..MergeOptions::default()
    };
    let (merged, report) = merge_models(&ms, &opts).unwrap();
    assert_eq!(count(&merged.graph, &["Softmax"]), 2, "{report}");
    snapshot("merge_two_mlps_probabilities", &merged.graph.to_text());
}
