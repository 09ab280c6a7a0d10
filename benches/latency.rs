//! Batch-1 latency: smelt's JIT against tract on the fixtures, two small PyTorch exports, and
//! on resnet18, mobilenet_v2 and squeezenet1_1 (when tools/export_real_models.py has written
//! them). `cargo bench --bench latency`; the figures go to docs/performance.md. Compile time
//! (ONNX → callable function) is measured too.

use criterion::{criterion_group, criterion_main, Criterion};
use smelt::codegen::jit::{Options, TensorView};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_inputs(dir: &Path) -> Vec<smelt::Tensor> {
    (0..)
        .map(|k| dir.join(format!("input_{k}.pb")))
        .take_while(|p| p.exists())
        .map(|p| smelt::onnx::read_tensor_file(&p).expect("input").1)
        .collect()
}

fn models() -> Vec<(String, PathBuf, PathBuf)> {
    let f = root().join("tests/data/fixtures");
    let mut v: Vec<(String, PathBuf, PathBuf)> = [
        "digits_mlp",
        "digits_cnn",
        "digits_resnet",
        "digits_transformer",
        "digits_teacher",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            f.join(n).join("model.onnx"),
            f.join(n).join("test_data_set_0"),
        )
    })
    .collect();
    // Small PyTorch exports committed in the repo (tools/export_small_models.py).
    for n in ["gpt_tiny", "vit_tiny"] {
        let d = root().join("tests/data/small_models").join(n);
        v.push((
            n.to_string(),
            d.join("model.onnx"),
            d.join("test_data_set_0"),
        ));
    }
    for n in ["resnet18", "mobilenet_v2", "squeezenet1_1"] {
        let m = root().join("target/real-models").join(n).join("model.onnx");
        if m.exists() {
            v.push((
                n.to_string(),
                m,
                root()
                    .join("tests/data/real")
                    .join(n)
                    .join("test_data_set_0"),
            ));
        } else {
            eprintln!(
                "{n}: skipped ({} absent; run tools/export_real_models.py)",
                m.display()
            );
        }
    }
    v
}

fn bench(c: &mut Criterion) {
    for (name, path, data) in models() {
        let m = smelt::onnx::load_model(&path).expect("model");
        let inputs = read_inputs(&data);
        let shapes = m
            .graph
            .inputs()
            .iter()
            .zip(&inputs)
            .map(|(v, t)| (m.graph.value(*v).name.clone(), t.dims().to_vec()))
            .collect();
        let opts = Options {
            input_shapes: shapes,
            ..Default::default()
        };
        let mut g = c.benchmark_group(&name);
        let small = name.starts_with("digits") || name.ends_with("_tiny");
        g.sample_size(if small { 100 } else { 20 });
        let mut cm = smelt::compile_jit(&m, &opts).expect("compile");
        let views: Vec<TensorView> = inputs.iter().map(Into::into).collect();
        let mut outs: Vec<Vec<u8>> = cm.outputs().iter().map(|o| vec![0u8; o.bytes()]).collect();
        g.bench_function("smelt-jit", |b| {
            b.iter(|| {
                let mut o: Vec<&mut [u8]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                cm.run_into(&views, &mut o).expect("run")
            })
        });
        let tm = smelt::verify::TractModel::load_path(&path, &inputs).expect("tract");
        g.bench_function("tract", |b| b.iter(|| tm.run(&inputs).expect("tract run")));
        if !small {
            g.sample_size(10);
            g.bench_function("smelt-compile", |b| {
                b.iter(|| smelt::compile_jit(&m, &opts).expect("compile"))
            });
        }
        g.finish();
    }
}

/// The digits ensemble: members 0-3 merged (`--combine mean`) against the four members run one
/// after another, all on the JIT (issue: merged latency <= 0.5x the sum).
fn ensemble(c: &mut Criterion) {
    let dir = root().join("tests/data/fixtures/digits_ensemble");
    let members: Vec<smelt::Model> = (0..4)
        .map(|k| smelt::onnx::load_model(&dir.join(format!("member_{k}.onnx"))).expect("member"))
        .collect();
    let (merged, _) =
        smelt::passes::merge::merge_models(&members, &Default::default()).expect("merge");
    let x = read_inputs(&dir.join("test_data_set_0"));
    let opts = Options {
        input_shapes: vec![("input".into(), vec![1, 64])],
        ..Default::default()
    };
    let views: Vec<TensorView> = x.iter().map(Into::into).collect();
    let mut g = c.benchmark_group("digits_ensemble_0-3");
    let mut cm = smelt::compile_jit(&merged, &opts).expect("compile merged");
    let mut out = vec![0u8; 40];
    g.bench_function("merged-jit", |b| {
        b.iter(|| cm.run_into(&views, &mut [out.as_mut_slice()]).expect("run"))
    });
    let mut each: Vec<_> = members
        .iter()
        .map(|m| smelt::compile_jit(m, &opts).expect("compile member"))
        .collect();
    g.bench_function("four-members-jit", |b| {
        b.iter(|| {
            for cm in each.iter_mut() {
                cm.run_into(&views, &mut [out.as_mut_slice()]).expect("run");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench, ensemble);
criterion_main!(benches);
