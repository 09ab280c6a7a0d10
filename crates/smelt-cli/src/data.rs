//! Reading and writing the ONNX test-data layout: `input_K.pb` / `output_K.pb` TensorProto
//! files numbered by graph input/output position; `.npy` files are read as well.

use anyhow::{bail, Context, Result};
use smelt::ir::{DType, Dim, Graph, Tensor};
use std::path::Path;

/// Reads the inputs of a model from a folder: `input_K.pb` (or `input_K.npy`) for each graph
/// input K, in order.
pub fn read_inputs(dir: &Path, g: &Graph) -> Result<Vec<Tensor>> {
    let mut v = vec![];
    for (k, input) in g.inputs().iter().enumerate() {
        let pb = dir.join(format!("input_{k}.pb"));
        let npy = dir.join(format!("input_{k}.npy"));
        let t = if pb.exists() {
            smelt::onnx::read_tensor_file(&pb)
                .with_context(|| format!("cannot read {}", pb.display()))?
                .1
        } else if npy.exists() {
            smelt::data::read_npy(&npy)?
        } else {
            bail!(
                "{} has no input_{k}.pb for graph input `{}`",
                dir.display(),
                g.value(*input).name
            );
        };
        v.push(t);
    }
    Ok(v)
}

/// Reads numbered `output_K.pb` files if the folder has them.
pub fn read_expected(dir: &Path) -> Result<Vec<Tensor>> {
    let mut v = vec![];
    for k in 0.. {
        let p = dir.join(format!("output_{k}.pb"));
        if !p.exists() {
            break;
        }
        v.push(
            smelt::onnx::read_tensor_file(&p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .1,
        );
    }
    Ok(v)
}

/// Writes `output_K.pb` files named after the graph outputs.
pub fn write_outputs(dir: &Path, g: &Graph, outs: &[Tensor]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (k, t) in outs.iter().enumerate() {
        let name = g
            .outputs()
            .get(k)
            .map(|v| g.value(*v).name.clone())
            .unwrap_or_default();
        let p = dir.join(format!("output_{k}.pb"));
        smelt::onnx::write_tensor_file(&p, &name, t)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

/// Parses `--input-shape NAME=D,D,..` values.
pub fn parse_input_shapes(specs: &[String]) -> Result<Vec<(String, Vec<usize>)>> {
    specs
        .iter()
        .map(|s| {
            let (name, dims) = s
                .split_once('=')
                .with_context(|| format!("--input-shape `{s}`: expected NAME=D,D,.."))?;
            let dims = dims
                .split(',')
                .map(|d| {
                    d.trim()
                        .parse::<usize>()
                        .with_context(|| format!("--input-shape `{s}`: `{d}` is not a size"))
                })
                .collect::<Result<_>>()?;
            Ok((name.to_string(), dims))
        })
        .collect()
}

/// The static input specs of a graph, with symbolic dims bound by `--input-shape`.
pub fn input_specs(g: &Graph, shapes: &[(String, Vec<usize>)]) -> Result<Vec<(DType, Vec<usize>)>> {
    g.inputs()
        .iter()
        .map(|v| {
            let name = &g.value(*v).name;
            let ty = g.value_type(*v);
            let dtype = ty
                .dtype()
                .with_context(|| format!("input `{name}` has no known element type"))?;
            if let Some((_, dims)) = shapes.iter().find(|(n, _)| n == name) {
                return Ok((dtype, dims.clone()));
            }
            let shape = ty.shape().with_context(|| {
                format!("input `{name}` has unknown rank: give --input-shape {name}=...")
            })?;
            let dims = shape
                .iter()
                .map(|d| match d {
                    Dim::Known(n) => Ok(*n as usize),
                    other => anyhow::bail!(
                        "input `{name}` has a free dim `{other}`: give --input-shape {name}=D,D,.."
                    ),
                })
                .collect::<Result<_>>()?;
            Ok((dtype, dims))
        })
        .collect()
}
