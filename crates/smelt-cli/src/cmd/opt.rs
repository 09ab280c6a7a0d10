//! `smelt opt`: read a model, (optimise it,) write it.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Read a model, run passes over it and write it as ONNX (or smelt's text form).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  smelt opt model.onnx -o out.onnx                  round trip through smelt's IR
  smelt opt model.onnx -o out.onnx --verify         ... and check with tract that outputs match
  smelt opt model.onnx -o out.onnx --print-ir       print the IR that is written
  smelt opt big.onnx -o out.onnx --external-data 1024   weights of 1 KiB or more to out.onnx.data")]
pub struct Args {
    /// The input model (.onnx).
    input: PathBuf,
    /// Where to write the result (.onnx).
    #[arg(short, long)]
    output: PathBuf,
    /// Print the IR (text form) of the result on stdout.
    #[arg(long)]
    print_ir: bool,
    /// Check with tract, on seeded random inputs, that the output model computes what the
    /// input model computes (rtol 1e-4, atol 1e-5); exit 1 if not.
    #[arg(long)]
    verify: bool,
    /// Write constants of at least this many bytes to `<output>.data` (ONNX external data).
    #[arg(long, value_name = "BYTES")]
    external_data: Option<usize>,
    /// Bind a symbolic input dim for --verify: NAME=D,D,..
    #[arg(long, value_name = "NAME=D,D,..")]
    input_shape: Vec<String>,
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    if a.output.extension().and_then(|e| e.to_str()) != Some("onnx") {
        bail!(
            "--output must be an .onnx file (got {})",
            a.output.display()
        );
    }
    let m = super::load(&a.input)?;
    if a.print_ir {
        print!("{}", m.to_text());
    }
    let opts = smelt::onnx::ExportOptions {
        external_data_threshold: a.external_data,
    };
    smelt::onnx::save_model(&m, &a.output, &opts)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    if a.verify {
        let shapes = crate::data::parse_input_shapes(&a.input_shape)?;
        let specs = crate::data::input_specs(&m.graph, &shapes)?;
        let inputs = smelt::verify::random_inputs(&specs, 0).map_err(anyhow::Error::msg)?;
        let before =
            smelt::verify::run_tract_path(&a.input, &inputs).context("tract on the input model")?;
        let after = smelt::verify::run_tract_path(&a.output, &inputs)
            .context("tract on the output model")?;
        let cmp = smelt::verify::compare_all(&after, &before, smelt::verify::Tolerance::EXACT);
        let ok = super::verify::print_comparison(&m.graph, &cmp);
        if !ok {
            eprintln!(
                "error: {} does not compute what {} computes",
                a.output.display(),
                a.input.display()
            );
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}
