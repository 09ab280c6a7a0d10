//! Pipeline tests: report figures on a hand-computed case, stop-after, print-ir, verify-each.

use super::*;
use crate::eval::ReferenceRunner;
use crate::pass::Changed;
use crate::testutil::{op, B};
use smelt_ir::{Attr, DType, Op};

/// x: f32[1,4] -> Gemm(W f32[3,4], b f32[3], transB=1) -> Identity -> Relu.
fn mlp() -> Graph {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[1, 4]);
    let w = b.c(
        "w",
        &[3, 4],
        &[1f32, 2., 3., 4., 5., 6., 7., 8., 9., 10., 11., 12.],
    );
    let bias = b.c("b", &[3], &[0.5f32, -0.5, 0.]);
    let h = b.op("h", op("Gemm", &[("transB", Attr::Int(1))]), &[x, w, bias]);
    let i = b.op("i", op("Identity", &[]), &[h]);
    let y = b.op("y", op("Relu", &[]), &[i]);
    b.finish(&[y])
}

fn opts<'a>() -> RunOptions<'a> {
    RunOptions {
        verify_ir: true,
        ..RunOptions::default()
    }
}

#[test]
fn report_figures_are_right_on_a_hand_computed_case() {
    let mut g = mlp();
    let r = Pipeline::parse("fold,quantize")
        .unwrap()
        .run(&mut g, &mut PassCtx::new(), &opts())
        .unwrap();
    // Before: Gemm, Identity, Relu; 12 + 3 parameters in 60 bytes;
    // FLOPs: Gemm 2*3*4 + 3 (bias) = 27, Relu 3, Identity 0.
    // fold removes the Identity. quantize adds a DequantizeLinear (2 FLOPs per element, 24)
    // and stores i8[3,4] (12 B) + f32[3] scales (12 B) + i8[3] zero points (3 B) + the bias.
    assert_eq!(
        r.table(false),
        "\
pass      rewrites  nodes  parameters  parameter bytes  FLOPs
fold      1         3 → 2  15 → 15     60 B → 60 B      30 → 30
quantize  1         2 → 3  15 → 21     60 B → 39 B      30 → 54
fold: Identity/Dropout/no-ops removed: 1
quantize: quantized 1 weight input(s) to i8, per channel
"
    );
    let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    let p = &j["passes"][1];
    assert_eq!(p["pass"], "quantize");
    assert_eq!(p["before"]["parameter_bytes"], 60);
    assert_eq!(p["after"]["parameter_bytes"], 39);
    assert_eq!(p["after"]["flops"], 54);
    assert_eq!(p["after"]["nodes"], 3);
    assert!(p["time_ms"].as_f64().unwrap() >= 0.0);
}

#[test]
fn stop_after_and_print_ir_after() {
    let mut g = mlp();
    let o = RunOptions {
        stop_after: Some(1),
        print_ir: PrintIr::After(vec!["fold".into()]),
        ..opts()
    };
    let r = Pipeline::parse("fold,quantize")
        .unwrap()
        .run(&mut g, &mut PassCtx::new(), &o)
        .unwrap();
    assert_eq!(r.passes.len(), 1);
    assert_eq!(r.stopped_after, Some(1));
    assert_eq!(r.ir_after.len(), 1);
    assert_eq!(r.ir_after[0].index, 1);
    assert_eq!(r.ir_after[0].text, g.to_text());
    assert!(r
        .table(false)
        .ends_with("stopped after pass 1 (--stop-after)\n"));
}

/// A pass that turns the Add named `mid` into a Sub: a wrong rewrite.
struct Corrupt;

impl Pass for Corrupt {
    fn name(&self) -> &'static str {
        "corrupt"
    }
    fn run(&self, g: &mut Graph, _: &mut PassCtx) -> Result<Changed, PassError> {
        for id in g.node_ids() {
            if g.node(id).name == "mid" {
                g.node_mut(id).op = Op::Sub(smelt_ir::ops::Sub {});
                return Ok(Changed::count(1));
            }
        }
        Ok(Changed::NONE)
    }
}

#[test]
fn verify_each_names_the_pass_and_the_first_differing_node() {
    let mut b = B::new();
    let x = b.input("x", DType::F32, &[2]);
    let c = b.c("c", &[2], &[1f32, 2.]);
    let i = b.op("i", op("Identity", &[]), &[x]);
    let mid = b.op("mid", op("Add", &[]), &[i, c]);
    let y = b.op("y", op("Mul", &[]), &[mid, c]);
    let z = b.op("z", op("Relu", &[]), &[y]);
    let mut g = b.finish(&[z]);
    let runner = ReferenceRunner;
    let o = RunOptions {
        verify_each: Some(VerifyEach {
            runner: &runner,
            inputs: vec![Tensor::from_vec(vec![2], &[3f32, 4.]).unwrap()],
            rtol: 1e-4,
            atol: 1e-5,
        }),
        ..opts()
    };
    let p = Pipeline::new(vec![
        Box::new(crate::fold::Fold::default()),
        Box::new(Corrupt),
    ]);
    let e = p.run(&mut g, &mut PassCtx::new(), &o).unwrap_err();
    // fold was checked and passed; corrupt drifted first at `mid`: (4+2) - (4-2) = 4.
    assert_eq!(e.report.passes.len(), 1);
    assert_eq!(e.report.passes[0].verified.as_deref(), Some("ok"));
    assert_eq!(
        e.to_string(),
        "--verify each: outputs drift after pass 2 `corrupt`; first differing node `mid` (value `mid`, max abs diff 4e0)"
    );
}

/// A pass that declares a wrong type.
struct Breaks;

impl Pass for Breaks {
    fn name(&self) -> &'static str {
        "breaks"
    }
    fn run(&self, g: &mut Graph, _: &mut PassCtx) -> Result<Changed, PassError> {
        let out = g.outputs()[0];
        g.set_value_type(out, smelt_ir::Type::tensor(DType::I64, &[7]));
        Ok(Changed::count(1))
    }
}

#[test]
fn the_verifier_catches_a_pass_that_breaks_the_graph() {
    let mut g = mlp();
    let e = Pipeline::new(vec![Box::new(Breaks)])
        .run(&mut g, &mut PassCtx::new(), &opts())
        .unwrap_err();
    assert!(matches!(e.error, PassError::Invalid { ref pass, .. } if pass == "breaks"));
}

#[test]
fn unknown_names_in_a_spec_are_refused_with_the_column() {
    let e = Pipeline::parse("fold,prune(ratio=0.5)").err().unwrap();
    assert_eq!(
        e.to_string(),
        "--passes, column 6: unknown pass `prune`; known passes: fold, quantize"
    );
    let e = Pipeline::parse("quantize(bits=2)").err().unwrap();
    assert_eq!(
        e.to_string(),
        "pass `quantize`: option `bits`: 2 bits is not implemented (8 and 4 are)"
    );
}

#[test]
fn verify_each_reports_how_far_a_lossy_pass_moves_the_outputs() {
    let mut g = mlp();
    let runner = ReferenceRunner;
    let o = RunOptions {
        verify_each: Some(VerifyEach {
            runner: &runner,
            inputs: vec![Tensor::from_vec(vec![1, 4], &[1f32, 0.5, -1., 2.]).unwrap()],
            rtol: 1e-4,
            atol: 1e-5,
        }),
        ..opts()
    };
    let r = Pipeline::parse("fold,quantize")
        .unwrap()
        .run(&mut g, &mut PassCtx::new(), &o)
        .unwrap();
    assert_eq!(r.passes[0].verified.as_deref(), Some("ok"));
    let v = r.passes[1].verified.as_deref().unwrap();
    assert!(v.starts_with("lossy pass: outputs differ by up to "), "{v}");
}
