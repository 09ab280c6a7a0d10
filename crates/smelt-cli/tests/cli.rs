//! The command line as a user meets it: exit codes, messages, files written.

use std::path::PathBuf;
use std::process::Command;

fn smelt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_smelt"))
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/fixtures")
}

#[test]
fn run_with_tract_matches_the_expected_outputs() {
    let dir = fixtures().join("digits_cnn");
    let out = smelt()
        .args(["run", "--backend", "tract"])
        .arg(dir.join("model.onnx"))
        .arg("--inputs")
        .arg(dir.join("test_data_set_0"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // onnxruntime classifies this image as an 8 (fixtures README).
    assert!(stdout.contains("argmax 8"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("outputs match"));
}

#[test]
fn opt_round_trip_verifies_and_writes_a_file() {
    let tmp = std::env::temp_dir().join(format!("smelt-cli-opt-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out_path = tmp.join("out.onnx");
    let out = smelt()
        .arg("opt")
        .arg(fixtures().join("digits_transformer/model.onnx"))
        .arg("-o")
        .arg(&out_path)
        .arg("--verify")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out_path.exists());
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn verify_exits_1_when_models_disagree() {
    let out = smelt()
        .arg("verify")
        .arg(fixtures().join("digits_student/model.onnx"))
        .arg(fixtures().join("digits_teacher/model.onnx"))
        .args(["--random", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISMATCH"));
}

#[test]
fn missing_file_is_exit_1_with_the_path_and_bad_usage_is_exit_2() {
    let out = smelt()
        .args(["inspect", "no/such/model.onnx"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no/such/model.onnx"), "{err}");
    assert!(!err.contains("panicked"));
    let out = smelt().args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_json_counts_parameters() {
    let out = smelt()
        .arg("inspect")
        .arg(fixtures().join("digits_mlp/model.onnx"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // 64*128+128 + 128*64+64 + 64*10+10 = 17,226 (fixtures README: ONNX params).
    assert_eq!(v["parameters"], 17226);
    assert_eq!(v["ops"]["Gemm"], 3);
    // Multiply-accumulates of 64-128-64-10 at batch 1: 64*128 + 128*64 + 64*10.
    assert_eq!(v["macs"], 64 * 128 + 128 * 64 + 64 * 10);
}

#[test]
fn text_form_with_blob_is_a_complete_model_and_a_missing_blob_is_an_error() {
    let tmp = std::env::temp_dir().join(format!("smelt-cli-text-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let g = tmp.join("g.smelt");
    let back = tmp.join("back.onnx");
    let model = fixtures().join("digits_resnet/model.onnx");
    let out = smelt()
        .arg("opt")
        .arg(&model)
        .args(["--emit", "text", "-o"])
        .arg(&g)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tmp.join("g.smelt.blob").exists());
    let out = smelt()
        .arg("opt")
        .arg(&g)
        .arg("-o")
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // tract runs the original and the model rebuilt from text identically.
    let out = smelt()
        .arg("verify")
        .arg(&model)
        .arg(&back)
        .args(["--random", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::fs::remove_file(tmp.join("g.smelt.blob")).unwrap();
    let out = smelt()
        .arg("opt")
        .arg("--from-text")
        .arg(&g)
        .arg("--print-ir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no constant #") && err.contains("g.smelt.blob"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn opt_with_passes_reports_and_refuses_unknown_passes() {
    let tmp = std::env::temp_dir().join(format!("smelt-cli-passes-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out_path = tmp.join("folded.onnx");
    let model = fixtures().join("digits_mlp_qdq_wpair/model.onnx");
    let out = smelt()
        .arg("opt")
        .arg(&model)
        .arg("-o")
        .arg(&out_path)
        .args(["--passes", "fold", "--verify", "each"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fold") && err.contains("→"),
        "the report table is printed: {err}"
    );
    // Folding Q/DQ pairs on weights into int8 storage makes the file smaller.
    assert!(std::fs::metadata(&out_path).unwrap().len() < std::fs::metadata(&model).unwrap().len());
    let out = smelt()
        .arg("opt")
        .arg(&model)
        .arg("-o")
        .arg(&out_path)
        .args(["--passes", "fold,frob"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown pass `frob`") && err.contains("fold, quantize"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn inspect_plan_reports_arena_against_its_bounds() {
    let out = smelt()
        .arg("inspect")
        .arg(fixtures().join("digits_resnet/model.onnx"))
        .args(["--plan", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (arena, naive, lower) = (
        v["plan"]["arena_bytes"].as_u64().unwrap(),
        v["plan"]["naive_bytes"].as_u64().unwrap(),
        v["plan"]["lower_bound_bytes"].as_u64().unwrap(),
    );
    assert!(
        lower <= arena && arena <= naive,
        "{lower} <= {arena} <= {naive}"
    );
    assert!(arena as f64 <= 1.1 * lower as f64);
}

/// A node test whose reduction axes are a graph input: `smelt check` refuses the node and says
/// how to lift that; `smelt run` compiles the axes in from the data, says so, and matches the
/// suite's expected outputs. Skipped when ../shared/onnx-node-tests is absent.
#[test]
fn run_freezes_inputs_the_backend_needs_at_compile_time() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/onnx-node-tests/test_reduce_sum_keepdims_example");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let check = smelt()
        .arg("check")
        .arg(dir.join("model.onnx"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("graph input `axes`") && stdout.contains("at compile time lifts this"),
        "{stdout}"
    );
    let run = smelt()
        .arg("run")
        .arg(dir.join("model.onnx"))
        .arg("--inputs")
        .arg(dir.join("test_data_set_0"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        stderr.contains("compiled with the values of `axes`"),
        "{stderr}"
    );
    assert!(stderr.contains("outputs match"), "{stderr}");
}
