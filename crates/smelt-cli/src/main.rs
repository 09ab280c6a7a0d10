//! The `smelt` command line: an ahead-of-time compiler for ONNX models.
//!
//! Each subcommand lives in its own module under `cmd/`. Errors carry context (file, node)
//! through `anyhow` and end the process with exit code 1; bad usage exits with 2 (clap).

mod cmd;
mod data;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// smelt: an ahead-of-time compiler for neural-network models (ONNX in, native code or a
/// smaller ONNX out).
#[derive(Parser)]
#[command(name = "smelt", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  smelt inspect model.onnx                      inputs, outputs, ops, parameters
  smelt opt model.onnx -o out.onnx --print-ir   round trip through smelt's IR
  smelt check model.onnx                        what the native backend cannot compile
  smelt run model.onnx --inputs test_data_set_0 --outputs out/   (native code, or --backend tract)
  smelt verify a.onnx b.onnx --random 8 --seed 1
  smelt merge m0.onnx m1.onnx -o ensemble.onnx  an ensemble as one model

Exit codes: 0 success, 1 the work failed or was refused, 2 bad usage.";

#[derive(Subcommand)]
enum Command {
    Check(cmd::check::Args),
    Inspect(cmd::inspect::Args),
    Merge(cmd::merge::Args),
    Opt(cmd::opt::Args),
    Run(cmd::run::Args),
    Verify(cmd::verify::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.command {
        Command::Check(a) => cmd::check::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Merge(a) => cmd::merge::run(a),
        Command::Opt(a) => cmd::opt::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Verify(a) => cmd::verify::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
