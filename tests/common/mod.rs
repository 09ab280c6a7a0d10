//! Helpers shared by the workspace tests: where the fixtures are, and reading test data.
#![allow(dead_code)]

use smelt_ir::Tensor;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fixtures copied into the repository.
pub fn fixtures() -> PathBuf {
    root().join("tests/data/fixtures")
}

/// `../shared` beside the repository, when it is there.
pub fn shared() -> Option<PathBuf> {
    let p = root().join("../shared");
    p.is_dir().then_some(p)
}

/// Every fixture model: (name, model path, test-data folder).
pub fn fixture_models() -> Vec<(String, PathBuf, PathBuf)> {
    let f = fixtures();
    let mut v = vec![];
    for name in [
        "digits_mlp",
        "digits_cnn",
        "digits_resnet",
        "digits_teacher",
        "digits_student",
        "digits_student_scratch",
        "digits_mlp_qdq",
        "digits_mlp_qdq_wpair",
        "digits_mlp_wq8",
        "digits_transformer",
    ] {
        v.push((
            name.to_string(),
            f.join(name).join("model.onnx"),
            f.join(name).join("test_data_set_0"),
        ));
    }
    for k in 0..5 {
        v.push((
            format!("digits_ensemble_member_{k}"),
            f.join(format!("digits_ensemble/member_{k}.onnx")),
            f.join("digits_ensemble/test_data_set_0"),
        ));
    }
    v
}

/// Reads `input_K.pb` (or `output_K.pb`) files of a test-data folder, in order.
pub fn read_numbered(dir: &Path, prefix: &str) -> Vec<Tensor> {
    let mut v = vec![];
    for k in 0.. {
        let p = dir.join(format!("{prefix}_{k}.pb"));
        if !p.exists() {
            break;
        }
        v.push(
            smelt_onnx::read_tensor_file(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .1,
        );
    }
    v
}

/// Splits a batch (first dim = samples) into one tensor per sample, reshaped to `dims`.
pub fn samples(batch: &Tensor, dims: &[usize]) -> Vec<Tensor> {
    let n = batch.dims()[0];
    let per: usize = dims.iter().product();
    let bytes = batch.bytes().expect("numeric batch");
    let w = batch.dtype().bits() / 8;
    (0..n)
        .map(|i| {
            Tensor::from_bytes(
                batch.dtype(),
                dims.to_vec(),
                bytes[i * per * w..(i + 1) * per * w].to_vec(),
            )
            .expect("sample")
        })
        .collect()
}

/// The digits test set: samples shaped like `dims` and their labels.
pub fn digits_test(dims: &[usize]) -> (Vec<Tensor>, Vec<i64>) {
    let d = fixtures().join("digits_test");
    let file = match dims.len() {
        4 => "x_img.pb",
        3 => "x_seq.pb",
        _ => "x.pb",
    };
    let x = smelt_onnx::read_tensor_file(&d.join(file))
        .expect("digits_test x")
        .1;
    let y = smelt_onnx::read_tensor_file(&d.join("y.pb"))
        .expect("digits_test y")
        .1;
    (samples(&x, dims), y.to_i64_vec().expect("labels"))
}

/// Index of the largest element.
pub fn argmax(t: &Tensor) -> usize {
    let v = t.to_f64_vec().expect("numeric");
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

/// The ONNX node-test folders of ../shared/onnx-node-tests, sorted; `None` when absent.
pub fn node_test_dirs() -> Option<Vec<PathBuf>> {
    let suite = shared()?.join("onnx-node-tests");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&suite)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").exists())
        .collect();
    dirs.sort();
    Some(dirs)
}

/// The sub-folders of `dir` whose names start with `prefix`, sorted.
pub fn subdirs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_dir()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `input_K.pb` and `output_K.pb` of a test-data folder, or why they cannot be read as tensors
/// (some node tests hold sequences or optionals).
pub fn read_test_data(dir: &Path) -> Result<(Vec<Tensor>, Vec<Tensor>), String> {
    let mut inputs = vec![];
    let mut expected = vec![];
    for (prefix, v) in [("input", &mut inputs), ("output", &mut expected)] {
        for k in 0.. {
            let p = dir.join(format!("{prefix}_{k}.pb"));
            if !p.exists() {
                break;
            }
            v.push(
                smelt_onnx::read_tensor_file(&p)
                    .map_err(|e| e.to_string())?
                    .1,
            );
        }
    }
    Ok((inputs, expected))
}

/// The exported real models present on this machine: (name, model file, data folder). Models
/// are written to target/real-models/ by tools/export_real_models.py (not committed); their
/// onnxruntime data is committed under tests/data/real/. Absent models are reported as skipped.
pub fn real_models() -> Vec<(String, PathBuf, PathBuf)> {
    let mut v = vec![];
    for d in subdirs(&root().join("tests/data/real"), "") {
        let Some(name) = d.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        let model = root()
            .join("target/real-models")
            .join(&name)
            .join("model.onnx");
        if model.exists() {
            v.push((name, model, d));
        } else {
            eprintln!(
                "skipped {name}: {} is absent (run tools/export_real_models.py)",
                model.display()
            );
        }
    }
    v
}

/// JIT options binding each graph input to the shape of the given tensor.
pub fn jit_options(m: &smelt_ir::Model, inputs: &[Tensor]) -> smelt::codegen::jit::Options {
    let shapes = m
        .graph
        .inputs()
        .iter()
        .zip(inputs)
        .map(|(v, x)| (m.graph.value(*v).name.clone(), x.dims().to_vec()))
        .collect();
    smelt::codegen::jit::Options {
        input_shapes: shapes,
        ..Default::default()
    }
}
