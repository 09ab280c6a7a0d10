//! `smelt opt`: read a model, run passes over it, write it.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Read a model, run passes over it and write it as ONNX (or smelt's text form).
#[derive(clap::Args)]
#[command(after_help = "Examples:
  smelt opt model.onnx -o out.onnx                  round trip through smelt's IR
  smelt opt model.onnx -o out.onnx --passes fold    constant folding, BN folding, dead code, ...
  smelt opt model.onnx -o out.onnx --passes \"fold,quantize(per_channel=true)\" --verify
  smelt opt model.onnx -o out.onnx --passes fold --verify each   name the pass that drifts
  smelt opt model.onnx --passes help                list the passes and their options
  smelt opt model.onnx -o out.onnx --print-ir       print the IR that is written
  smelt opt big.onnx -o out.onnx --external-data 1024   weights of 1 KiB or more to out.onnx.data
  smelt opt model.onnx --emit text -o g.smelt       the IR as text, constants in g.smelt.blob
  smelt opt g.smelt -o model.onnx                   a hand-written or edited graph back to ONNX")]
pub struct Args {
    /// The input model: .onnx, or smelt's text form (.smelt, constants from .smelt.blob).
    #[arg(required_unless_present_any = ["from_text", "passes"])]
    input: Option<PathBuf>,
    /// Read the input from smelt's text form (the same as giving a .smelt file).
    #[arg(long, value_name = "G.smelt", conflicts_with = "input")]
    from_text: Option<PathBuf>,
    /// Where to write the result: .onnx, or .smelt for the text form. Optional with --print-ir.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Output format; by default from the output's extension.
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// Passes to run, in order: `fold,quantize(bits=8,per_channel=true)`. `--passes help`
    /// lists every pass and its options.
    #[arg(long, value_name = "SPEC")]
    passes: Option<String>,
    /// Print the IR (text form) of the result on stdout.
    #[arg(long)]
    print_ir: bool,
    /// Print the IR after the named pass (repeatable).
    #[arg(long, value_name = "PASS")]
    print_ir_after: Vec<String>,
    /// Print the IR after every pass.
    #[arg(long)]
    print_ir_after_all: bool,
    /// Run only the first N passes of --passes (to bisect a problem).
    #[arg(long, value_name = "N")]
    stop_after: Option<usize>,
    /// Print the per-pass report as JSON on stdout (instead of the table on stderr).
    #[arg(long)]
    json: bool,
    /// Check with tract, on seeded random inputs, that the output computes what the input
    /// computes (rtol 1e-4, atol 1e-5); exit 1 if not. `--verify each` checks after every
    /// exact pass and names the first pass and node whose values drift.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "end", value_name = "each")]
    verify: Option<VerifyWhen>,
    /// Write constants of at least this many bytes to `<output>.data` (ONNX external data).
    #[arg(long, value_name = "BYTES")]
    external_data: Option<usize>,
    /// Bind a symbolic input dim for --verify: NAME=D,D,..
    #[arg(long, value_name = "NAME=D,D,..")]
    input_shape: Vec<String>,
}

/// When `--verify` compares.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerifyWhen {
    /// Once, the output against the input.
    End,
    /// After every exact pass.
    Each,
}

/// What `smelt opt` writes.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Emit {
    /// An ONNX model.
    Onnx,
    /// smelt's text form, with a blob file for the constants it summarises.
    Text,
}

fn passes_help() -> String {
    let mut s = String::from(
        "passes (run in the order given, e.g. --passes \"fold,quantize(per_channel=true)\"):\n",
    );
    for p in smelt::passes::registry::all() {
        s.push_str(&format!("  {:<10} {}\n", p.name, p.summary));
        for o in p.options {
            s.push_str(&format!(
                "      {:<28} {}\n",
                format!("{}={}", o.name, o.default),
                o.help
            ));
        }
    }
    s
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    if a.passes.as_deref() == Some("help") {
        print!("{}", passes_help());
        return Ok(ExitCode::SUCCESS);
    }
    let Some(input) = a.input.clone().or(a.from_text.clone()) else {
        bail!("give an input model")
    };
    if a.output.is_none()
        && !a.print_ir
        && a.print_ir_after.is_empty()
        && !a.print_ir_after_all
        && !a.json
    {
        bail!("nothing to do: give -o OUT (or --print-ir)");
    }
    let mut m = super::load(&input)?;
    let output_is_text =
        a.output.as_ref().is_some_and(|o| smelt::is_text_path(o)) || a.emit == Some(Emit::Text);
    if a.verify.is_some() && (smelt::is_text_path(&input) || output_is_text || a.output.is_none()) {
        bail!("--verify compares ONNX models with tract: give an .onnx input and -o OUT.onnx");
    }
    let shapes = crate::data::parse_input_shapes(&a.input_shape)?;
    let verify_inputs = match a.verify {
        Some(_) => {
            let specs = crate::data::input_specs(&m.graph, &shapes)?;
            smelt::verify::random_inputs(&specs, 0).map_err(anyhow::Error::msg)?
        }
        None => vec![],
    };
    if let Some(spec) = &a.passes {
        let pipeline = smelt::passes::Pipeline::parse(spec).map_err(|e| anyhow::anyhow!("{e}"))?;
        let runner = smelt::runner::TractRunner::for_model(&m);
        let loader = smelt::runner::FileLoader;
        let mut cx = smelt::passes::PassCtx::with(Some(&runner), Some(&loader));
        let print_ir = if a.print_ir_after_all {
            smelt::passes::PrintIr::All
        } else if !a.print_ir_after.is_empty() {
            smelt::passes::PrintIr::After(a.print_ir_after.clone())
        } else {
            smelt::passes::PrintIr::None
        };
        let verify_each = (a.verify == Some(VerifyWhen::Each)).then(|| smelt::passes::VerifyEach {
            runner: &runner,
            inputs: verify_inputs.clone(),
            rtol: 1e-4,
            atol: 1e-5,
        });
        let opts = smelt::passes::RunOptions {
            verify_ir: true,
            stop_after: a.stop_after,
            print_ir,
            verify_each,
        };
        let report = match pipeline.run(&mut m.graph, &mut cx, &opts) {
            Ok(r) => r,
            Err(e) => {
                eprint!("{}", e.report);
                bail!("{}", e.error);
            }
        };
        for d in &report.ir_after {
            println!("; IR after pass {} `{}`", d.index, d.pass);
            print!("{}", d.text);
        }
        if a.json {
            println!("{}", report.to_json());
        } else {
            eprint!("{report}");
        }
    }
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
    if a.verify.is_some() {
        let before = smelt::verify::run_tract_path(&input, &verify_inputs)
            .context("tract on the input model")?;
        let after = smelt::verify::run_tract_path(&output, &verify_inputs)
            .context("tract on the output model")?;
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
