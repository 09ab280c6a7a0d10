//! `smelt run`: run a model on test data.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which engine runs the model.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Backend {
    /// smelt's native code, compiled in process with Cranelift.
    Jit,
    /// tract, the reference interpreter.
    Tract,
}

/// Run a model on inputs in the ONNX test-data layout (input_0.pb, … in a folder).
#[derive(clap::Args)]
#[command(after_help = "Example:
  smelt run model.onnx --inputs test_data_set_0 --outputs out/
If the inputs folder also holds output_K.pb files, the outputs are compared with them.
With the JIT, inputs whose values the native backend needs at compile time (reduction axes,
shapes, Slice/Pad/Range bounds, TopK's k, Clip's bounds, …) are compiled in from the given
data; stderr names them.")]
pub struct Args {
    /// The model (.onnx).
    model: PathBuf,
    /// Folder with input_K.pb (or input_K.npy) for each graph input K.
    #[arg(long)]
    inputs: PathBuf,
    /// Folder to write output_K.pb to.
    #[arg(long)]
    outputs: Option<PathBuf>,
    /// The engine to run the model with.
    #[arg(long, value_enum, default_value = "jit")]
    backend: Backend,
    /// Bind a symbolic input dim (the default: the shapes of the given inputs): NAME=D,D,..
    #[arg(long, value_name = "NAME=D,D,..")]
    input_shape: Vec<String>,
}

/// Runs the command.
pub fn run(a: Args) -> Result<ExitCode> {
    let m = super::load(&a.model)?;
    let inputs = crate::data::read_inputs(&a.inputs, &m.graph)?;
    let outs = match a.backend {
        Backend::Tract => smelt::verify::run_tract_path(&a.model, &inputs).context("tract")?,
        Backend::Jit => {
            let mut shapes = crate::data::parse_input_shapes(&a.input_shape)?;
            for (v, t) in m.graph.inputs().iter().zip(&inputs) {
                let name = m.graph.value(*v).name.clone();
                if !shapes.iter().any(|(n, _)| *n == name) {
                    shapes.push((name, t.dims().to_vec()));
                }
            }
            // Inputs whose values fix shapes or are baked into the code (axes, shapes, bounds)
            // are compiled in as constants; the compiled model takes the others.
            let frozen = smelt::compile_time_values(&m, &inputs);
            if !frozen.is_empty() {
                let names: Vec<String> = frozen.iter().map(|(n, _)| format!("`{n}`")).collect();
                eprintln!(
                    "jit: compiled with the values of {} (the backend needs them at compile time)",
                    names.join(", ")
                );
            }
            shapes.retain(|(n, _)| !frozen.iter().any(|(f, _)| f == n));
            let opts = smelt::codegen::jit::Options {
                input_shapes: shapes,
                const_inputs: frozen,
                ..Default::default()
            };
            let t0 = std::time::Instant::now();
            let mut cm = smelt::compile_jit(&m, &opts).context("the native backend")?;
            let compile_ms = t0.elapsed().as_secs_f64() * 1e3;
            let views: Vec<smelt::codegen::jit::TensorView> = m
                .graph
                .inputs()
                .iter()
                .zip(&inputs)
                .filter(|(v, _)| {
                    let name = &m.graph.value(**v).name;
                    !opts.const_inputs.iter().any(|(f, _)| f == name)
                })
                .map(|(_, t)| t.into())
                .collect();
            let t1 = std::time::Instant::now();
            let outs = cm.run(&views)?;
            eprintln!(
                "jit: compiled in {compile_ms:.1} ms, ran in {:.3} ms, arena {} bytes",
                t1.elapsed().as_secs_f64() * 1e3,
                cm.plan().arena_bytes
            );
            outs
        }
    };
    for (k, t) in outs.iter().enumerate() {
        let name = m
            .graph
            .outputs()
            .get(k)
            .map(|v| m.graph.value(*v).name.clone())
            .unwrap_or_default();
        let vals = t.to_f64_vec().unwrap_or_default();
        let head: Vec<String> = vals.iter().take(10).map(|v| format!("{v:.4}")).collect();
        let argmax = vals
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i);
        println!(
            "{name}: {}{:?} [{}{}]{}",
            t.dtype(),
            t.dims(),
            head.join(", "),
            if vals.len() > 10 { ", …" } else { "" },
            argmax.map(|i| format!("  argmax {i}")).unwrap_or_default()
        );
    }
    if let Some(dir) = &a.outputs {
        crate::data::write_outputs(dir, &m.graph, &outs)?;
        eprintln!("wrote {} output(s) to {}", outs.len(), dir.display());
    }
    let expected = crate::data::read_expected(&a.inputs)?;
    if !expected.is_empty() {
        let cmp = smelt::verify::compare_all(&outs, &expected, smelt::verify::Tolerance::EXACT);
        let ok = super::verify::print_comparison(&m.graph, &cmp);
        if !ok {
            eprintln!(
                "error: outputs differ from the expected outputs in {}",
                a.inputs.display()
            );
            return Ok(ExitCode::from(1));
        }
        eprintln!(
            "outputs match {} (rtol 1e-4, atol 1e-5)",
            a.inputs.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
