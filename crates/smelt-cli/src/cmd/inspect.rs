//! `smelt inspect`: what a model is made of.

use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

/// Show a model's inputs and outputs, op histogram, parameters, opsets and producer.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  smelt inspect model.onnx\n  smelt inspect model.onnx --json | jq .parameters"
)]
pub struct Args {
    /// The model (.onnx).
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let m = super::load(&a.model)?;
    let s = smelt::stats::model_stats(&m);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("model      {}", a.model.display());
    println!("graph      {}", s.name);
    println!(
        "producer   {}",
        if s.producer.is_empty() {
            "-"
        } else {
            &s.producer
        }
    );
    let ops: Vec<String> = s.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
    println!("ir/opset   IR {} · {}", s.ir_version, ops.join(", "));
    println!();
    println!("inputs");
    for p in &s.inputs {
        println!("  {:<30} {}", p.name, p.ty);
    }
    println!("outputs");
    for p in &s.outputs {
        println!("  {:<30} {}", p.name, p.ty);
    }
    println!();
    println!(
        "parameters {} ({})",
        s.parameters,
        human_bytes(s.parameter_bytes)
    );
    let unknown = if s.unknown_cost_nodes > 0 {
        format!(" (+ {} node(s) of unknown cost)", s.unknown_cost_nodes)
    } else {
        String::new()
    };
    println!(
        "compute    {} MACs, {} FLOPs{unknown}",
        group(s.macs),
        group(s.flops)
    );
    println!("nodes      {}", s.nodes);
    let mut ops: Vec<_> = s.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        let mark = if s.opaque_ops.contains_key(op) {
            "  (kept verbatim)"
        } else {
            ""
        };
        println!("  {op:<28} {n:>6}{mark}");
    }
    Ok(ExitCode::SUCCESS)
}
