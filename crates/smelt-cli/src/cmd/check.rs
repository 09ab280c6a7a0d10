//! `smelt check`: everything a backend cannot take, at once, before any work.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// List every op, opset or dtype that the native backend (and, separately, the ONNX path)
/// cannot take, with node names; exit 1 when there is any.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  smelt check model.onnx
  smelt check model.onnx --json
Exit codes: 0 both paths take the model, 1 something is listed, 2 bad usage.")]
pub struct Args {
    /// The model (.onnx or .smelt).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Problem {
    node: String,
    op: String,
    reason: String,
}

#[derive(serde::Serialize)]
struct Report {
    model: String,
    native: Vec<Problem>,
    onnx: Vec<Problem>,
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let m = super::load(&a.model)?;
    let native: Vec<Problem> = smelt::check_native(&m)
        .into_iter()
        .map(|u| Problem {
            node: u.node,
            op: u.op,
            reason: u.reason,
        })
        .collect();
    let onnx: Vec<Problem> = match smelt::onnx::model_to_bytes(&m) {
        Ok(_) => vec![],
        Err(e) => vec![Problem {
            node: String::new(),
            op: String::new(),
            reason: e.to_string(),
        }],
    };
    let ok = native.is_empty() && onnx.is_empty();
    if a.json {
        let r = Report {
            model: a.model.display().to_string(),
            native,
            onnx,
        };
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        if native.is_empty() {
            println!("native backend: every node can be compiled");
        } else {
            println!(
                "native backend: {} node(s) cannot be compiled:",
                native.len()
            );
            for p in &native {
                println!("  {:<32} {:<20} {}", p.node, p.op, p.reason);
            }
        }
        if onnx.is_empty() {
            println!("ONNX path: the model can be written back");
        } else {
            for p in &onnx {
                println!("ONNX path: {}", p.reason);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
