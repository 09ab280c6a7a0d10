//! `merge` on the digits ensemble and on small CNN/MLP members, judged by independent
//! references: onnxruntime's committed member logits, and tract running the merged ONNX next
//! to the members.

mod common;

use smelt::passes::merge::{merge_models, Combine, MergeOptions, MergeReport};
use smelt_ir::{Model, Op, Tensor};
use smelt_verify::TractModel;

fn member(k: usize) -> Model {
    smelt_onnx::load_model(&common::fixtures().join(format!("digits_ensemble/member_{k}.onnx")))
        .unwrap()
}

/// onnxruntime's logits of member `k` for the 500 test images.
fn committed(k: usize) -> Vec<Vec<f64>> {
    let p = common::fixtures().join(format!("digits_ensemble/member_{k}_test_outputs.pb"));
    let t = smelt_onnx::read_tensor_file(&p).unwrap().1;
    common::samples(&t, &[1, 10])
        .iter()
        .map(|t| t.to_f64_vec().unwrap())
        .collect()
}

/// tract's first output of `m` (exported to ONNX) on every input.
fn tract(m: &Model, xs: &[Tensor]) -> Vec<Vec<f64>> {
    let bytes = smelt_onnx::model_to_bytes(m).unwrap();
    let tm = TractModel::load_bytes(&bytes, &xs[..1]).unwrap();
    xs.iter()
        .map(|x| {
            tm.run(std::slice::from_ref(x)).unwrap()[0]
                .to_f64_vec()
                .unwrap()
        })
        .collect()
}

/// Σ wᵢ yᵢ, image by image.
fn combine(ys: &[Vec<Vec<f64>>], w: &[f64]) -> Vec<Vec<f64>> {
    (0..ys[0].len())
        .map(|i| {
            (0..ys[0][i].len())
                .map(|j| ys.iter().zip(w).map(|(y, w)| y[i][j] * w).sum())
                .collect()
        })
        .collect()
}

fn max_abs(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f64::max)
}

fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

fn accuracy(outs: &[Vec<f64>], ys: &[i64]) -> f64 {
    outs.iter()
        .zip(ys)
        .filter(|(o, y)| argmax(o) as i64 == **y)
        .count() as f64
        / ys.len() as f64
}

fn count(m: &Model, types: &[&str]) -> usize {
    let g = &m.graph;
    g.node_ids()
        .iter()
        .filter(|id| types.contains(&g.node(**id).op.op_type()))
        .count()
}

fn merge(members: &[Model], opts: MergeOptions) -> (Model, MergeReport) {
    let (m, r) = merge_models(members, &opts).unwrap();
    smelt_ir::verify(&m.graph).unwrap();
    println!("{r}");
    (m, r)
}

#[test]
fn members_0_to_3_mean_is_the_mean_of_their_logits_at_one_members_cost() {
    let members: Vec<Model> = (0..4).map(member).collect();
    let (merged, report) = merge(&members, MergeOptions::default());
    assert!(
        count(&merged, &["Gemm", "MatMul", "Conv"])
            <= count(&members[0], &["Gemm", "MatMul", "Conv"]),
        "{}",
        merged.to_text()
    );
    assert_eq!(report.fused_groups, vec![vec![0, 1, 2, 3]]);
    let stats = |m: &Model| smelt::passes::cost::graph_stats(&m.graph);
    let sum: u64 = members.iter().map(|m| stats(m).flops).sum();
    let (one, fused) = (stats(&members[0]), stats(&merged));
    println!(
        "members 0-3: one member {} nodes / {} FLOPs, four {} nodes / {sum} FLOPs, merged {} nodes / {} FLOPs",
        one.nodes,
        one.flops,
        4 * one.nodes,
        fused.nodes,
        fused.flops
    );
    assert!(fused.flops <= sum && fused.nodes <= one.nodes);
    let (xs, _) = common::digits_test(&[1, 64]);
    let want = combine(&(0..4).map(committed).collect::<Vec<_>>(), &[0.25; 4]);
    let err = max_abs(&tract(&merged, &xs), &want);
    println!("members 0-3 mean: max abs error vs onnxruntime {err:.2e}");
    assert!(err <= 1e-4, "max abs error {err}");
    let meta: Vec<&str> = merged.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert!(meta.contains(&"smelt.merge.members") && meta.contains(&"smelt.merge.weights"));
}

#[test]
fn members_0_to_4_normalized_weights() {
    let members: Vec<Model> = (0..5).map(member).collect();
    let w = [1.0, 1.0, 1.0, 1.0, 2.0];
    let (merged, report) = merge(
        &members,
        MergeOptions {
            combine: Combine::Normalized,
            weights: Some(w.to_vec()),
            ..MergeOptions::default()
        },
    );
    assert_eq!(report.branches, vec![4]);
    let (xs, _) = common::digits_test(&[1, 64]);
    let s: f64 = w.iter().sum();
    let wn: Vec<f64> = w.iter().map(|x| x / s).collect();
    let want = combine(&(0..5).map(committed).collect::<Vec<_>>(), &wn);
    let err = max_abs(&tract(&merged, &xs), &want);
    println!("members 0-4 normalized 1,1,1,1,2: max abs error vs onnxruntime {err:.2e}");
    assert!(err <= 1e-4, "max abs error {err}");
}

#[test]
fn vote_counts_the_members_argmax() {
    let members: Vec<Model> = (0..5).map(member).collect();
    let (merged, _) = merge(
        &members,
        MergeOptions {
            combine: Combine::Vote,
            ..MergeOptions::default()
        },
    );
    let (xs, _) = common::digits_test(&[1, 64]);
    let got = tract(&merged, &xs);
    let logits: Vec<Vec<Vec<f64>>> = (0..5).map(committed).collect();
    for (i, counts) in got.iter().enumerate() {
        let mut want = vec![0.0; 10];
        for l in &logits {
            want[argmax(&l[i])] += 1.0;
        }
        assert_eq!(counts, &want, "image {i}");
    }
}

/// The soup equals one member with the mean of the four members' weights (computed here),
/// and the accuracies of members, ensembles and soup on digits_test, all run by tract.
#[test]
fn soup_is_one_model_with_averaged_weights_and_accuracies() {
    let members: Vec<Model> = (0..4).map(member).collect();
    let calib = smelt_onnx::read_tensor_file(&common::fixtures().join("digits_calib/x.pb"))
        .unwrap()
        .1;
    let (soup, report) = merge(
        &members,
        MergeOptions {
            combine: Combine::Soup,
            calib: Some(calib),
            ..MergeOptions::default()
        },
    );
    assert!(report.warnings[0].contains("one initialisation"));
    assert_eq!(count(&soup, &["Gemm"]), 2);
    // The average, computed here.
    let mut avg = members[0].clone();
    for id in avg.graph.node_ids() {
        if !matches!(avg.graph.node(id).op, Op::Const(_)) {
            continue;
        }
        let name = avg.graph.value(smelt_ir::ValueId::new(id, 0)).name.clone();
        let ts: Vec<Vec<f32>> = members
            .iter()
            .map(|m| {
                let v = m.graph.values_by_name()[&name];
                m.graph.const_value(v).unwrap().to_f32_vec().unwrap()
            })
            .collect();
        let mean: Vec<f32> = (0..ts[0].len())
            .map(|j| (ts.iter().map(|t| t[j] as f64).sum::<f64>() / 4.0) as f32)
            .collect();
        let dims = avg
            .graph
            .const_value(smelt_ir::ValueId::new(id, 0))
            .unwrap()
            .dims()
            .to_vec();
        avg.graph.node_mut(id).op = Op::Const(Tensor::from_vec(dims, &mean).unwrap());
    }
    let (xs, ys) = common::digits_test(&[1, 64]);
    let soup_out = tract(&soup, &xs);
    let err = max_abs(&soup_out, &tract(&avg, &xs));
    assert!(err <= 1e-5, "soup vs averaged weights: {err}");

    let mut lines = vec![];
    for k in 0..5 {
        let acc = accuracy(&tract(&member(k), &xs), &ys);
        lines.push(format!("member {k}: {:.1} %", 100.0 * acc));
    }
    let all: Vec<Model> = (0..5).map(member).collect();
    for (label, ms, probs) in [
        ("ensemble 0-3 mean of logits", &all[..4], false),
        ("ensemble 0-3 mean of probabilities", &all[..4], true),
        ("ensemble 0-4 mean of logits", &all[..], false),
        ("ensemble 0-4 mean of probabilities", &all[..], true),
    ] {
        let (m, _) = merge(
            ms,
            MergeOptions {
                probabilities: probs,
                ..MergeOptions::default()
            },
        );
        let acc = accuracy(&tract(&m, &xs), &ys);
        lines.push(format!("{label}: {:.1} %", 100.0 * acc));
        assert!(acc >= 0.96, "{label}: {acc}");
    }
    let acc = accuracy(&soup_out, &ys);
    lines.push(format!("soup 0-3: {:.1} %", 100.0 * acc));
    assert!(acc >= 0.96, "soup: {acc}");
    println!("digits_test accuracy (tract):\n  {}", lines.join("\n  "));
}

/// A CNN member over `input: f32[1,1,8,8]`, weights from seeds `s..s+6`.
fn cnn(s: u64) -> Model {
    let src = format!(
        "model ir_version=8 opset(ai.onnx=17)
graph cnn(input: f32[1,1,8,8]) -> (logits: f32[1,10]) {{
  %conv1.weight = const f32[4,1,3,3] random(seed={})
  %conv1.bias = const f32[4] random(seed={})
  %conv2.weight = const f32[8,4,3,3] random(seed={})
  %conv2.bias = const f32[8] random(seed={})
  %fc.weight = const f32[10,128] random(seed={})
  %fc.bias = const f32[10] random(seed={})
  %c1 = Conv(%input, %conv1.weight, %conv1.bias) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} : f32[1,4,8,8]
  %r1 = Relu(%c1) : f32[1,4,8,8]
  %p1 = MaxPool(%r1) {{kernel_shape=[2, 2], strides=[2, 2]}} : f32[1,4,4,4]
  %c2 = Conv(%p1, %conv2.weight, %conv2.bias) {{kernel_shape=[3, 3], pads=[1, 1, 1, 1]}} : f32[1,8,4,4]
  %r2 = Relu(%c2) : f32[1,8,4,4]
  %flat = Flatten(%r2) : f32[1,128]
  %logits = Gemm(%flat, %fc.weight, %fc.bias) {{transB=1}} : f32[1,10]
  return %logits
}}
",
        s,
        s + 1,
        s + 2,
        s + 3,
        s + 4,
        s + 5
    );
    Model::from_text(&src, &smelt_ir::text::NoConsts).unwrap()
}

#[test]
fn cnn_members_merge_into_grouped_convs_and_match_tract() {
    let members = [cnn(10), cnn(20), cnn(30)];
    let (xs, _) = common::digits_test(&[1, 1, 8, 8]);
    let xs = &xs[..60];
    let ys: Vec<Vec<Vec<f64>>> = members.iter().map(|m| tract(m, xs)).collect();
    for (opts, w) in [
        (MergeOptions::default(), vec![1.0 / 3.0; 3]),
        (
            MergeOptions {
                combine: Combine::Weighted,
                weights: Some(vec![0.5, 2.0, -1.0]),
                ..MergeOptions::default()
            },
            vec![0.5, 2.0, -1.0],
        ),
    ] {
        let (merged, report) = merge(&members, opts);
        assert_eq!(count(&merged, &["Conv"]), 2, "{report}");
        assert_eq!(count(&merged, &["Gemm"]), 1, "{report}");
        let err = max_abs(&tract(&merged, xs), &combine(&ys, &w));
        assert!(err <= 1e-4, "max abs error {err}\n{report}");
    }
}

/// Two MLP members over `input: f32[1,64]` that share a frozen first layer; `b` has a deeper
/// head, so they stay separate branches.
fn frozen_pair() -> (Model, Model) {
    let head = "model ir_version=8 opset(ai.onnx=17)
graph m(input: f32[1,64]) -> (logits: f32[1,10]) {
  %fc1.weight = const f32[32,64] random(seed=1)
  %fc1.bias = const f32[32] random(seed=2)
";
    let a = format!(
        "{head}  %fc2.weight = const f32[10,32] random(seed=3)
  %h = Gemm(%input, %fc1.weight, %fc1.bias) {{transB=1}} : f32[1,32]
  %a = Relu(%h) : f32[1,32]
  %logits = Gemm(%a, %fc2.weight) {{transB=1}} : f32[1,10]
  return %logits
}}
"
    );
    let b = format!(
        "{head}  %fc2.weight = const f32[16,32] random(seed=4)
  %fc3.weight = const f32[10,16] random(seed=5)
  %h = Gemm(%input, %fc1.weight, %fc1.bias) {{transB=1}} : f32[1,32]
  %a = Relu(%h) : f32[1,32]
  %h2 = Gemm(%a, %fc2.weight) {{transB=1}} : f32[1,16]
  %a2 = Relu(%h2) : f32[1,16]
  %logits = Gemm(%a2, %fc3.weight) {{transB=1}} : f32[1,10]
  return %logits
}}
"
    );
    let p = |s: &str| Model::from_text(s, &smelt_ir::text::NoConsts).unwrap();
    (p(&a), p(&b))
}

#[test]
fn a_shared_frozen_first_layer_is_held_and_run_once() {
    let (a, b) = frozen_pair();
    let (merged, report) = merge(&[a.clone(), b.clone()], MergeOptions::default());
    let g = &merged.graph;
    let fc1 = a
        .graph
        .const_value(a.graph.values_by_name()["fc1.weight"])
        .unwrap()
        .clone();
    let holders: Vec<_> = g
        .node_ids()
        .into_iter()
        .filter(|id| matches!(&g.node(*id).op, Op::Const(t) if t.bytes() == fc1.bytes()))
        .collect();
    assert_eq!(holders.len(), 1, "{}", g.to_text());
    let users = g.users(smelt_ir::ValueId::new(holders[0], 0));
    assert_eq!(users.len(), 1, "{report}");
    // One shared Gemm + a's head + b's two: 4 Gemms instead of 5.
    assert_eq!(count(&merged, &["Gemm"]), 4, "{}", g.to_text());
    let (xs, _) = common::digits_test(&[1, 64]);
    let xs = &xs[..60];
    let want = combine(&[tract(&a, xs), tract(&b, xs)], &[0.5, 0.5]);
    let err = max_abs(&tract(&merged, xs), &want);
    assert!(err <= 1e-5, "max abs error {err}");
}
