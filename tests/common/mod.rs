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
