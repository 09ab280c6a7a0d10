//! `smelt merge`: an ensemble of models into one graph.

use anyhow::{bail, Context, Result};
use smelt::passes::merge::{merge_models_with, Combine, MergeOptions, DEFAULT_NODE_COST};
use std::path::PathBuf;
use std::process::ExitCode;

/// Merge models that take the same inputs into one model that combines their outputs.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  smelt merge m0.onnx m1.onnx m2.onnx -o ensemble.onnx              mean of the outputs
  smelt merge a.onnx b.onnx -o e.onnx --combine normalized --weights 1,2
  smelt merge a.onnx b.onnx -o e.onnx --probabilities               mean of softmax
  smelt merge a.onnx b.onnx c.onnx -o e.onnx --combine vote         per-class vote counts
  smelt merge a.onnx b.onnx -o soup.onnx --combine soup --calib x.pb   parameter averaging

Inputs are matched by name and shape, outputs by position. Members of the same layer
structure are fused into one wider network; the report on stderr says what was fused,
shared and chosen per layer.")]
pub struct Args {
    /// The member models (.onnx or .smelt).
    #[arg(required = true, num_args = 1..)]
    members: Vec<PathBuf>,
    /// Where to write the merged model (.onnx, or .smelt for the text form).
    #[arg(short, long)]
    output: PathBuf,
    /// How to combine the members' outputs.
    #[arg(long, value_enum, default_value = "mean")]
    combine: CombineArg,
    /// One weight per member: W,W,.. (weighted, normalized, vote, soup).
    #[arg(long, value_name = "W,W,..", value_delimiter = ',')]
    weights: Option<Vec<f64>>,
    /// Apply softmax (last axis) to each member's outputs before combining.
    #[arg(long)]
    probabilities: bool,
    /// soup: a calibration batch (.pb or .npy, first dim = samples) on which to report each
    /// member's and the soup's top-1 agreement with the members' mean output.
    #[arg(long, value_name = "X.pb")]
    calib: Option<PathBuf>,
    /// Keep every member a separate branch (no structural fusion).
    #[arg(long)]
    no_fuse: bool,
    /// The cost of one node, in FLOPs, when choosing block-diagonal vs separate layers.
    #[arg(long, value_name = "FLOPS", default_value_t = DEFAULT_NODE_COST)]
    node_cost: u64,
}

/// `--combine`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CombineArg {
    /// 1/n Σ yᵢ.
    Mean,
    /// Σ wᵢ yᵢ.
    Weighted,
    /// Σ wᵢ yᵢ / Σ wᵢ.
    Normalized,
    /// Parameter averaging (identical-structure members fine-tuned from one initialisation).
    Soup,
    /// Per-class counts of the members' argmax.
    Vote,
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let combine = match a.combine {
        CombineArg::Mean => Combine::Mean,
        CombineArg::Weighted => Combine::Weighted,
        CombineArg::Normalized => Combine::Normalized,
        CombineArg::Soup => Combine::Soup,
        CombineArg::Vote => Combine::Vote,
    };
    if a.calib.is_some() && combine != Combine::Soup {
        bail!("--calib reports the soup's agreement: use it with --combine soup");
    }
    let mut members = vec![];
    for p in &a.members {
        members.push(super::load(p)?);
    }
    let calib = match &a.calib {
        Some(p) => Some(
            smelt::data::read_tensor(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        None => None,
    };
    let opts = MergeOptions {
        combine,
        weights: a.weights.clone(),
        probabilities: a.probabilities,
        fuse: !a.no_fuse,
        node_cost: a.node_cost,
        calib,
        member_names: a.members.iter().map(|p| p.display().to_string()).collect(),
        ..MergeOptions::default()
    };
    let runner = smelt::runner::TractRunner::for_model(&members[0]);
    let (m, report) =
        merge_models_with(&members, &opts, &runner).map_err(|e| anyhow::anyhow!("{e}"))?;
    eprint!("{report}");
    if smelt::is_text_path(&a.output) {
        smelt::save_text(&m, &a.output)?;
    } else {
        smelt::onnx::save_model(&m, &a.output, &Default::default())
            .with_context(|| format!("cannot write {}", a.output.display()))?;
    }
    eprintln!("wrote {}", a.output.display());
    Ok(ExitCode::SUCCESS)
}
