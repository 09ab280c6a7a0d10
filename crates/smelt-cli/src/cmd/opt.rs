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
  smelt opt big.onnx -o out.onnx --external-data 1024   weights of 1 KiB or more to out.onnx.data
  smelt opt model.onnx --emit text -o g.smelt       the IR as text, constants in g.smelt.blob
  smelt opt g.smelt -o model.onnx                   a hand-written or edited graph back to ONNX")]
pub struct Args {
    /// The input model: .onnx, or smelt's text form (.smelt, constants from .smelt.blob).
    #[arg(required_unless_present = "from_text")]
    input: Option<PathBuf>,
    /// Read the input from smelt's text form (the same as giving a .smelt file).
    #[arg(long, value_name = "G.smelt", conflicts_with = "input")]
    from_text: Option<PathBuf>,
    /// Where to write the result: .onnx, or .smelt for the text form. Optional with --print-ir.
    #[arg(short, long, required_unless_present = "print_ir")]
    output: Option<PathBuf>,
    /// Output format; by default from the output's extension.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
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

/// What `smelt opt` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// An ONNX model.
    Onnx,
    /// smelt's text form, with a blob file for the constants it summarises.
    Text,
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let Some(input) = a.input.clone().or(a.from_text.clone()) else {
        bail!("give an input model")
    };
    let m = super::load(&input)?;
    if a.print_ir {
        print!("{}", m.to_text());
    }
    let Some(output) = a.output.clone() else {
        return Ok(ExitCode::SUCCESS);
    };
    let emit = match a.emit {
        Some(e) => e,
        None if smelt::is_text_path(&output) => Emit::Text,
        None if output.extension().is_some_and(|e| e == "onnx") => Emit::Onnx,
        None => bail!(
            "cannot tell the output format from {}: use .onnx or .smelt, or --emit",
            output.display()
        ),
    };
    if a.verify && (emit == Emit::Text || smelt::is_text_path(&input)) {
        bail!("--verify compares ONNX models with tract: give an .onnx input and output");
    }
    match emit {
        Emit::Text => {
            smelt::save_text(&m, &output)?;
            eprintln!(
                "wrote {} and {}",
                output.display(),
                smelt::blob_path(&output).display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        Emit::Onnx => {
            let opts = smelt::onnx::ExportOptions {
                external_data_threshold: a.external_data,
            };
            smelt::onnx::save_model(&m, &output, &opts)
                .with_context(|| format!("cannot write {}", output.display()))?;
        }
    }
    if a.verify {
        let shapes = crate::data::parse_input_shapes(&a.input_shape)?;
        let specs = crate::data::input_specs(&m.graph, &shapes)?;
        let inputs = smelt::verify::random_inputs(&specs, 0).map_err(anyhow::Error::msg)?;
        let before =
            smelt::verify::run_tract_path(&input, &inputs).context("tract on the input model")?;
        let after =
            smelt::verify::run_tract_path(&output, &inputs).context("tract on the output model")?;
        let cmp = smelt::verify::compare_all(&after, &before, smelt::verify::Tolerance::EXACT);
        if !super::verify::print_comparison(&m.graph, &cmp) {
            eprintln!(
                "error: {} does not compute what {} computes",
                output.display(),
                input.display()
            );
            return Ok(ExitCode::from(1));
        }
    }
    eprintln!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}
