//! `smelt verify`: do two models compute the same thing?

use anyhow::{bail, Context, Result};
use smelt::verify::{Comparison, Tolerance};
use std::path::PathBuf;
use std::process::ExitCode;

/// Run two models with tract on the same inputs and compare their outputs.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  smelt verify a.onnx b.onnx --inputs test_data_set_0
  smelt verify a.onnx b.onnx --random 16 --seed 7 --rtol 1e-3
Prints max abs/rel error per output; exits 1 when any output is outside the tolerance
(|a - b| <= atol + rtol * |b|, b being the first model's output).")]
pub struct Args {
    /// The reference model.
    a: PathBuf,
    /// The model to check.
    b: PathBuf,
    /// Folder with input_K.pb files to run both models on.
    #[arg(long, conflicts_with = "random")]
    inputs: Option<PathBuf>,
    /// Number of seeded random input sets (uniform [0, 1) floats) when no --inputs.
    #[arg(long, default_value_t = 4)]
    random: usize,
    /// Seed of the random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Relative tolerance.
    #[arg(long, default_value_t = 1e-4)]
    rtol: f64,
    /// Absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// Bind a symbolic input dim: NAME=D,D,..
    #[arg(long, value_name = "NAME=D,D,..")]
    input_shape: Vec<String>,
}

/// Prints one line per output; true when all agree.
pub fn print_comparison(g: &smelt::Graph, cmp: &[Comparison]) -> bool {
    let mut ok = true;
    for (k, c) in cmp.iter().enumerate() {
        let name = g
            .outputs()
            .get(k)
            .map(|v| g.value(*v).name.clone())
            .unwrap_or_else(|| format!("#{k}"));
        match &c.incompatible {
            Some(r) => {
                ok = false;
                println!("  {name:<24} MISMATCH {r}");
            }
            None => {
                ok &= c.ok();
                println!(
                    "  {name:<24} {}  max abs {:.3e}  max rel {:.3e}  ({} of {} outside tolerance)",
                    if c.ok() { "ok      " } else { "MISMATCH" },
                    c.max_abs,
                    c.max_rel,
                    c.mismatches,
                    c.count
                );
            }
        }
    }
    ok
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let ma = super::load(&a.a)?;
    let tol = Tolerance {
        rtol: a.rtol,
        atol: a.atol,
    };
    let sets: Vec<Vec<smelt::Tensor>> = match &a.inputs {
        Some(dir) => vec![crate::data::read_inputs(dir, &ma.graph)?],
        None => {
            if a.random == 0 {
                bail!("--random must be at least 1");
            }
            let shapes = crate::data::parse_input_shapes(&a.input_shape)?;
            let specs = crate::data::input_specs(&ma.graph, &shapes)?;
            (0..a.random)
                .map(|i| {
                    smelt::verify::random_inputs(&specs, a.seed.wrapping_add(i as u64))
                        .map_err(anyhow::Error::msg)
                })
                .collect::<Result<_>>()?
        }
    };
    let first = sets.first().cloned().unwrap_or_default();
    let ta = smelt::verify::TractModel::load_path(&a.a, &first)
        .with_context(|| format!("tract on {}", a.a.display()))?;
    let tb = smelt::verify::TractModel::load_path(&a.b, &first)
        .with_context(|| format!("tract on {}", a.b.display()))?;
    let mut all_ok = true;
    for (i, inputs) in sets.iter().enumerate() {
        let ra = ta
            .run(inputs)
            .with_context(|| format!("tract on {}", a.a.display()))?;
        let rb = tb
            .run(inputs)
            .with_context(|| format!("tract on {}", a.b.display()))?;
        println!("input set {i}:");
        all_ok &= print_comparison(&ma.graph, &smelt::verify::compare_all(&rb, &ra, tol));
    }
    if all_ok {
        println!("the models agree (rtol {}, atol {})", a.rtol, a.atol);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: the models disagree");
        Ok(ExitCode::from(1))
    }
}
