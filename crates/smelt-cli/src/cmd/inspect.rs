//! `smelt inspect`: what a model is made of.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Show a model's inputs and outputs, op histogram, parameters, opsets and producer.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  smelt inspect model.onnx\n  smelt inspect model.onnx --json | jq .parameters\n  smelt inspect model.onnx --plan          the native backend's arena and where values live"
)]
pub struct Args {
    /// The model (.onnx).
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also show the native backend's memory plan: arena bytes against the naive sum and the
    /// lower bound (peak of live bytes), and where each value lives.
    #[arg(long)]
    plan: bool,
    /// Bind a symbolic input dim for --plan: NAME=D,D,..
    #[arg(long, value_name = "NAME=D,D,..")]
    input_shape: Vec<String>,
}

#[derive(serde::Serialize)]
struct PlanSummary {
    arena_bytes: u64,
    naive_bytes: u64,
    lower_bound_bytes: u64,
}

#[derive(serde::Serialize)]
struct Inspection<'a> {
    #[serde(flatten)]
    stats: &'a smelt::stats::ModelStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<PlanSummary>,
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
    let plan = if a.plan {
        let shapes = crate::data::parse_input_shapes(&a.input_shape)?;
        let opts = smelt::codegen::jit::Options {
            input_shapes: shapes,
            ..Default::default()
        };
        Some(smelt::codegen::plan(&smelt::native_graph(&m), &opts).context("the memory plan")?)
    } else {
        None
    };
    if a.json {
        let summary = plan.as_ref().map(|p| PlanSummary {
            arena_bytes: p.arena_bytes,
            naive_bytes: p.naive_bytes,
            lower_bound_bytes: p.lower_bound,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&Inspection {
                stats: &s,
                plan: summary
            })?
        );
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
    if let Some(p) = plan {
        let ratio = |x: u64| {
            if p.lower_bound > 0 {
                x as f64 / p.lower_bound as f64
            } else {
                1.0
            }
        };
        println!();
        println!(
            "memory plan: arena {} ({:.2}x the lower bound), naive sum {} ({:.2}x), lower bound (peak of live bytes) {}",
            human_bytes(p.arena_bytes),
            ratio(p.arena_bytes),
            human_bytes(p.naive_bytes),
            ratio(p.naive_bytes),
            human_bytes(p.lower_bound)
        );
        print!("{p}");
    }
    Ok(ExitCode::SUCCESS)
}
