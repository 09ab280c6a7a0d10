//! The ONNX operator conformance suite (`../shared/onnx-node-tests`), run on every path.
//!
//! For each test: tract on the original model, given every input's fact from the test data,
//! must reproduce the expected outputs at the suite's tolerance (rtol 1e-3, atol 1e-7; exact
//! for integers) — those are "the tests tract passes". For each of them, the model exported by
//! smelt after import (ONNX → IR → ONNX) must pass the same check with tract.
//!
//! Skips (with a message) when the suite folder is absent. `SMELT_WRITE_CONFORMANCE=1` writes
//! the counts and every failure with its reason to docs/conformance.md.

mod common;

use smelt_ir::Tensor;
use smelt_verify::{compare_all, run_tract_bytes, run_tract_path, Tolerance};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

#[derive(Default)]
struct Tally {
    total: usize,
    skipped_data: Vec<(String, String)>,
    tract_fails: usize,
    passed: usize,
    failed: Vec<(String, String)>,
    import_refused: Vec<(String, String)>,
    round_trips: usize,
    round_trip_refused: Vec<(String, String)>,
    text_passed: usize,
    text_failed: Vec<(String, String)>,
}

/// ONNX → IR → text → IR (constants from a blob store) → ONNX.
fn through_text(model_path: &Path) -> Result<Vec<u8>, String> {
    let m = smelt_onnx::load_model(model_path).map_err(|e| format!("import: {e}"))?;
    let text = m.to_text();
    let blobs = smelt_ir::text::BlobStore::from_graph(&m.graph);
    let mut m2 = smelt_ir::Model::from_text(&text, &blobs)
        .map_err(|e| format!("parse: {}", e.render(&text)))?;
    let again = m2.to_text();
    if again != text {
        let line = text
            .lines()
            .zip(again.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        return Err(format!(
            "text differs after parsing, first at line {}",
            line + 1
        ));
    }
    m2.ir_version = m.ir_version;
    m2.opsets = m.opsets.clone();
    smelt_ir::infer::infer_graph(&mut m2.graph).map_err(|e| format!("infer: {}", e[0]))?;
    smelt_onnx::model_to_bytes(&m2).map_err(|e| format!("export: {e}"))
}

fn check(out: Result<Vec<Tensor>, String>, expected: &[Tensor]) -> Result<(), String> {
    let out = out?;
    let cmp = compare_all(&out, expected, Tolerance::ONNX_SUITE);
    for (i, c) in cmp.iter().enumerate() {
        if !c.ok() {
            return Err(match &c.incompatible {
                Some(r) => format!("output {i}: {r}"),
                None => {
                    format!(
                        "output {i}: {} of {} elements differ (max abs {:.3e})",
                        c.mismatches, c.count, c.max_abs
                    )
                }
            });
        }
    }
    Ok(())
}

fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("panicked".into()))
}

fn run_one(dir: &Path, t: &mut Tally) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let model_path = dir.join("model.onnx");
    let data = dir.join("test_data_set_0");
    t.total += 1;
    // Every model, whatever tract makes of it, must import and export (or be refused with a
    // reason, which the report lists).
    let any = guarded(|| {
        let m = smelt_onnx::load_model(&model_path).map_err(|e| format!("import: {e}"))?;
        smelt_onnx::model_to_bytes(&m).map_err(|e| format!("export: {e}"))?;
        through_text(&model_path).map(|_| ())
    });
    match any {
        Ok(()) => t.round_trips += 1,
        Err(e) => t.round_trip_refused.push((name.clone(), e)),
    }
    let read = guarded(|| common::read_test_data(&data));
    let (inputs, expected) = match read {
        Ok(x) => x,
        Err(e) => {
            t.skipped_data
                .push((name, format!("test data is not plain tensors: {e}")));
            return;
        }
    };
    if guarded(|| {
        check(
            run_tract_path(&model_path, &inputs).map_err(|e| e.to_string()),
            &expected,
        )
    })
    .is_err()
    {
        t.tract_fails += 1;
        return;
    }
    let exported = guarded(|| {
        let m = smelt_onnx::load_model(&model_path).map_err(|e| format!("import: {e}"))?;
        smelt_onnx::model_to_bytes(&m).map_err(|e| format!("export: {e}"))
    });
    let bytes = match exported {
        Ok(b) => b,
        Err(e) => {
            t.import_refused.push((name, e));
            return;
        }
    };
    match guarded(|| {
        check(
            run_tract_bytes(&bytes, &inputs).map_err(|e| e.to_string()),
            &expected,
        )
    }) {
        Ok(()) => t.passed += 1,
        Err(e) => t.failed.push((name.clone(), e)),
    }
    let text_bytes = guarded(|| through_text(&model_path));
    match text_bytes.and_then(|b| {
        guarded(|| {
            check(
                run_tract_bytes(&b, &inputs).map_err(|e| e.to_string()),
                &expected,
            )
        })
    }) {
        Ok(()) => t.text_passed += 1,
        Err(e) => t.text_failed.push((name, e)),
    }
}

#[test]
fn onnx_node_tests_round_trip_through_the_ir() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-node-tests is absent");
        return;
    };
    let _ = shared;
    let dirs = common::node_test_dirs().unwrap_or_default();
    // tract prints warnings through panics in some tests; keep the output readable.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut t = Tally::default();
    for d in &dirs {
        run_one(d, &mut t);
    }
    std::panic::set_hook(hook);
    let tract_passes = t.total - t.skipped_data.len() - t.tract_fails;
    let mut report = format!(
        "| path | tests | tract passes on the original | passes after smelt's round trip | failed | refused by smelt's importer/exporter |\n|---|---:|---:|---:|---:|---:|\n| ONNX → IR → ONNX, tract | {} | {} | {} | {} | {} |\n| ONNX → IR → text → IR → ONNX, tract | {} | {} | {} | {} | 0 |\n\n{} tests have test data that are not plain tensors (sequences/optionals) and are not counted by tract.\n",
        t.total,
        tract_passes,
        t.passed,
        t.failed.len(),
        t.import_refused.len(),
        t.total,
        tract_passes,
        t.text_passed,
        t.text_failed.len(),
        t.skipped_data.len()
    );
    report.push_str(&format!(
        "\nImport → export and import → text → parse → export of every model (whatever tract makes of it): {} of {} succeed.\n",
        t.round_trips, t.total
    ));
    for (n, e) in &t.round_trip_refused {
        report.push_str(&format!("- `{n}`: {e}\n"));
    }
    if !t.failed.is_empty() || !t.import_refused.is_empty() || !t.text_failed.is_empty() {
        report.push_str("\nFailures after the round trip:\n\n");
        for (n, e) in t
            .failed
            .iter()
            .chain(&t.import_refused)
            .chain(&t.text_failed)
        {
            report.push_str(&format!("- `{n}`: {e}\n"));
        }
    }
    eprintln!("{report}");
    if std::env::var_os("SMELT_WRITE_CONFORMANCE").is_some() {
        let path = common::root().join("docs/conformance-roundtrip.md");
        let _ = std::fs::write(&path, &report);
    }
    assert!(
        t.failed.is_empty() && t.import_refused.is_empty(),
        "{report}"
    );
}

/// Loads, round-trips and runs a model with tract on each of its test-data sets; returns the
/// largest errors or the reason it failed.
fn round_trip_against(
    model: &Path,
    sets: &[std::path::PathBuf],
    tol: Tolerance,
) -> Result<String, String> {
    round_trip_with(model, sets, tol, None)
}

/// As [`round_trip_against`], running the passes of `spec` before the export.
fn round_trip_with(
    model: &Path,
    sets: &[std::path::PathBuf],
    tol: Tolerance,
    spec: Option<&str>,
) -> Result<String, String> {
    let mut m = smelt_onnx::load_model(model).map_err(|e| format!("import: {e}"))?;
    smelt_ir::verify(&m.graph).map_err(|e| format!("verify: {e}"))?;
    if let Some(spec) = spec {
        let pipeline = smelt::passes::Pipeline::parse(spec).map_err(|e| e.to_string())?;
        let opts = smelt::passes::RunOptions {
            verify_ir: true,
            ..Default::default()
        };
        pipeline
            .run(&mut m.graph, &mut smelt::passes::PassCtx::new(), &opts)
            .map_err(|e| format!("{spec}: {}", e.error))?;
    }
    let bytes = smelt_onnx::model_to_bytes(&m).map_err(|e| format!("export: {e}"))?;
    let mut worst = 0.0f64;
    for set in sets {
        let inputs = common::read_numbered(set, "input");
        let expected = common::read_numbered(set, "output");
        let out = run_tract_bytes(&bytes, &inputs).map_err(|e| e.to_string())?;
        for (k, c) in compare_all(&out, &expected, tol).iter().enumerate() {
            if !c.ok() {
                return Err(format!(
                    "{}: output {k}: {} of {} outside tolerance, max abs {:.3e}, {:?}",
                    set.display(),
                    c.mismatches,
                    c.count,
                    c.max_abs,
                    c.incompatible
                ));
            }
            worst = worst.max(c.max_abs);
        }
    }
    Ok(format!("max abs error {worst:.2e}"))
}

fn data_sets(dir: &Path) -> Vec<std::path::PathBuf> {
    common::subdirs(dir, "test_data_set_")
}

/// The ONNX distribution's light real-architecture models (IR 3, opset 9, weights built by
/// ConstantOfShape at run time): after smelt's round trip, tract reproduces onnxruntime's
/// outputs (rtol 1e-4, atol 1e-5).
#[test]
fn light_models_round_trip() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-light-models is absent");
        return;
    };
    let names = light_model_dirs(&shared);
    let mut failures = vec![];
    for p in names {
        let r = round_trip_against(&p.join("model.onnx"), &data_sets(&p), Tolerance::EXACT);
        eprintln!("{}: {r:?}", p.display());
        if let Err(e) = r {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Real exported models (torchvision, a transformer encoder, an LSTM, a data-dependent If):
/// `tools/export_real_models.py` writes them to target/real-models/ (not committed) and their
/// onnxruntime outputs to tests/data/real/ (committed). Models that are absent are skipped.
#[test]
fn real_models_round_trip() {
    let mut failures = vec![];
    for (name, model, d) in common::real_models() {
        // Every op of these models is one smelt types: none may be kept opaque.
        if let Ok(m) = smelt_onnx::load_model(&model) {
            let opaque = smelt::stats::model_stats(&m).opaque_ops;
            if !opaque.is_empty() {
                failures.push(format!("{name}: imported as opaque: {opaque:?}"));
            }
        }
        for spec in [None, Some("fold")] {
            let r = round_trip_with(&model, &data_sets(&d), Tolerance::EXACT, spec);
            eprintln!("{name} {spec:?}: {r:?}");
            if let Err(e) = r {
                failures.push(format!("{name} {spec:?}: {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[derive(Default)]
struct JitTally {
    total: usize,
    passed: usize,
    failed: Vec<(String, String)>,
    unsupported: std::collections::BTreeMap<String, usize>,
    unsupported_tests: usize,
    compile_refused: Vec<(String, String)>,
    check_disagrees: Vec<(String, String)>,
    /// Tests compiled with some inputs frozen to the test data's values.
    frozen: usize,
    /// Every unsupported test with its reasons (`op: reason`).
    unsupported_why: Vec<(String, Vec<String>)>,
}

fn jit_one(dir: &Path, t: &mut JitTally) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let data = dir.join("test_data_set_0");
    let read = guarded(|| common::read_test_data(&data));
    let Ok((inputs, expected)) = read else { return };
    let Ok(m) = smelt_onnx::load_model(&dir.join("model.onnx")) else {
        return;
    };
    t.total += 1;
    // As `smelt run` does: inputs whose values the backend needs at compile time (axes,
    // shapes, bounds) are frozen to the test data's values; the model takes the others.
    let frozen = smelt::compile_time_values(&m, &inputs);
    let unsupported =
        match guarded(|| smelt::check_native_frozen(&m, &frozen).map_err(|e| e.to_string())) {
            Ok(u) => u,
            Err(e) => {
                t.failed.push((name, format!("check: {e}")));
                return;
            }
        };
    let mut opts = common::jit_options(&m, &inputs);
    opts.input_shapes
        .retain(|(n, _)| !frozen.iter().any(|(f, _)| f == n));
    let runtime: Vec<&Tensor> = m
        .graph
        .inputs()
        .iter()
        .zip(&inputs)
        .filter(|(v, _)| !frozen.iter().any(|(f, _)| *f == m.graph.value(**v).name))
        .map(|(_, x)| x)
        .collect();
    if !frozen.is_empty() {
        t.frozen += 1;
    }
    opts.const_inputs = frozen;
    let compiled = guarded(|| smelt::compile_jit(&m, &opts).map_err(|e| e.to_string()));
    if !unsupported.is_empty() {
        t.unsupported_tests += 1;
        t.unsupported_why.push((
            name.clone(),
            unsupported
                .iter()
                .map(|u| format!("{}: {}", u.op, u.reason))
                .collect(),
        ));
        let mut ops: Vec<&str> = unsupported.iter().map(|u| u.op.as_str()).collect();
        ops.sort();
        ops.dedup();
        for op in ops {
            *t.unsupported.entry(op.to_string()).or_default() += 1;
        }
        // `SMELT_JIT_WHY=Op` prints, for each test refused because of `Op`, the reasons.
        if let Some(why) = std::env::var_os("SMELT_JIT_WHY") {
            for u in unsupported.iter().filter(|u| why == u.op.as_str()) {
                eprintln!("why {name}: {u}");
            }
        }
        if compiled.is_ok() {
            t.check_disagrees.push((
                name,
                "check reports unsupported nodes but compilation succeeds".into(),
            ));
        }
        return;
    }
    let mut cm = match compiled {
        Ok(c) => c,
        Err(e) => {
            t.compile_refused.push((name, e));
            return;
        }
    };
    let views: Vec<smelt::codegen::jit::TensorView> = runtime.into_iter().map(Into::into).collect();
    let out = guarded(|| cm.run(&views).map_err(|e| e.to_string()));
    match check(out, &expected) {
        Ok(()) => t.passed += 1,
        Err(e) => t.failed.push((name, e)),
    }
}

/// The native backend on the node-test suite: every test whose ops the JIT takes must
/// reproduce the suite's expected outputs at its tolerance.
#[test]
fn onnx_node_tests_on_the_jit() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-node-tests is absent");
        return;
    };
    let _ = shared;
    let dirs = common::node_test_dirs().unwrap_or_default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut t = JitTally::default();
    for d in &dirs {
        jit_one(d, &mut t);
    }
    std::panic::set_hook(hook);
    let mut report = format!(
        "| path | tests with tensor data | passed | failed | refused at compile time | unsupported op |\n|---|---:|---:|---:|---:|---:|\n| JIT | {} | {} | {} | {} | {} |\n",
        t.total,
        t.passed,
        t.failed.len(),
        t.compile_refused.len(),
        t.unsupported_tests
    );
    report.push_str("\nFailures:\n\n");
    for (n, e) in &t.failed {
        report.push_str(&format!("- `{n}`: {e}\n"));
    }
    report.push_str("\nRefused at compile time (check() found nothing to object to):\n\n");
    for (n, e) in &t.compile_refused {
        report.push_str(&format!(
            "- `{n}`: {}\n",
            e.lines().next().unwrap_or_default()
        ));
    }
    report.push_str("\nUnsupported ops (tests that contain them):\n\n");
    for (op, n) in &t.unsupported {
        report.push_str(&format!("{op} {n}; "));
    }
    report.push_str(&format!(
        "\n\nCompiled with inputs frozen to the test data's values: {} tests.\n",
        t.frozen
    ));
    eprintln!("{report}");
    if std::env::var_os("SMELT_WRITE_CONFORMANCE").is_some() {
        report.push_str("\nUnsupported tests and why:\n\n");
        for (n, why) in &t.unsupported_why {
            report.push_str(&format!("- `{n}`: {}\n", why.join("; ")));
        }
        let _ = std::fs::write(common::root().join("target/conformance-jit.md"), &report);
    }
    assert!(
        t.check_disagrees.is_empty(),
        "smelt check disagrees with compilation: {:?}",
        t.check_disagrees
    );
    assert!(
        t.compile_refused.is_empty(),
        "check found nothing but compilation refused: {:?}",
        t.compile_refused
    );
    // A test the JIT compiles must give the suite's answer: a wrong answer is a bug.
    assert!(
        t.failed.is_empty(),
        "wrong answers on the JIT: {:?}",
        t.failed
    );
}

/// A Loop whose scan output's static shape fixes its iteration count (the expanded Range
/// node test: `[2]` for start 1, limit 5, delta 2) runs natively; inputs that would need
/// another number of iterations stop with a non-zero status, never a wrong or partial answer.
#[test]
fn jit_loop_with_a_run_time_trip_count_guards_its_scan_outputs() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-node-tests is absent");
        return;
    };
    let dir = shared.join("onnx-node-tests/test_range_float_type_positive_delta_expanded");
    let m = smelt_onnx::load_model(&dir.join("model.onnx")).unwrap();
    let (inputs, expected) = common::read_test_data(&dir.join("test_data_set_0")).unwrap();
    let opts = common::jit_options(&m, &inputs);
    let mut cm = smelt::compile_jit(&m, &opts).unwrap();
    let views: Vec<_> = inputs.iter().map(|t| t.into()).collect();
    check(cm.run(&views).map_err(|e| e.to_string()), &expected).unwrap();
    // Limit 9 needs 4 iterations (too many), limit 2 one (too few): both are refused.
    for limit in [9.0f32, 2.0] {
        let l = Tensor::scalar(limit);
        let views = vec![(&inputs[0]).into(), (&l).into(), (&inputs[2]).into()];
        let r = cm.run(&views);
        assert!(r.is_err(), "limit {limit}: {r:?}");
    }
}

/// An LSTM whose `sequence_lens` is a run-time input runs when every length is the full
/// sequence (the peephole node test) and stops with a non-zero status otherwise.
#[test]
fn jit_lstm_checks_run_time_sequence_lens() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-node-tests is absent");
        return;
    };
    let dir = shared.join("onnx-node-tests/test_lstm_with_peepholes");
    let m = smelt_onnx::load_model(&dir.join("model.onnx")).unwrap();
    let (inputs, expected) = common::read_test_data(&dir.join("test_data_set_0")).unwrap();
    let opts = common::jit_options(&m, &inputs);
    let mut cm = smelt::compile_jit(&m, &opts).unwrap();
    let views: Vec<_> = inputs.iter().map(|t| t.into()).collect();
    check(cm.run(&views).map_err(|e| e.to_string()), &expected).unwrap();
    let short = Tensor::from_vec(inputs[4].dims().to_vec(), &[1i32, 0]).unwrap();
    let mut views: Vec<_> = inputs.iter().map(|t| t.into()).collect();
    views[4] = (&short).into();
    assert!(cm.run(&views).is_err());
}

/// The folders of ../shared/onnx-light-models holding a model.onnx, sorted.
fn light_model_dirs(shared: &Path) -> Vec<std::path::PathBuf> {
    let dir = shared.join("onnx-light-models");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .map(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("model.onnx").exists())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The nine light models (their weights are ConstantOfShape fills, so many logits tie and a
/// Softmax magnifies any difference in summation order between columns) on the JIT, against
/// the onnxruntime outputs shipped with them.
#[test]
fn light_models_on_the_jit() {
    let Some(shared) = common::shared() else {
        eprintln!("skipped: ../shared/onnx-light-models is absent");
        return;
    };
    let names = light_model_dirs(&shared);
    let mut failures = vec![];
    for p in names {
        let r = (|| -> Result<(), String> {
            let m = smelt_onnx::load_model(&p.join("model.onnx")).map_err(|e| e.to_string())?;
            for set in data_sets(&p) {
                let (inputs, expected) = common::read_test_data(&set)?;
                let mut cm = smelt::compile_jit(&m, &common::jit_options(&m, &inputs))
                    .map_err(|e| e.to_string())?;
                let views: Vec<smelt::codegen::jit::TensorView> =
                    inputs.iter().map(Into::into).collect();
                let out = cm.run(&views).map_err(|e| e.to_string())?;
                for c in smelt_verify::compare_all(&out, &expected, Tolerance::EXACT) {
                    if !c.ok() {
                        return Err(format!("{}: {c:?}", set.display()));
                    }
                }
            }
            Ok(())
        })();
        eprintln!("{} on the JIT: {r:?}", p.display());
        if let Err(e) = r {
            failures.push(format!("{}: {e}", p.display()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
