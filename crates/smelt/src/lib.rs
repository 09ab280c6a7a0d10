//! smelt: an ahead-of-time compiler for ONNX models.
//!
//! This crate is the public library API. It re-exports the stages (each its own crate, see
//! ARCHITECTURE.md) and adds what ties them together: loading a model from any supported
//! form, model statistics for `smelt inspect`, and (later) the build-step API.
//!
//! ```no_run
//! let model = smelt::load("model.onnx".as_ref())?;
//! println!("{}", model.to_text());
//! smelt::onnx::save_model(&model, "out.onnx".as_ref(), &Default::default())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod data;
pub mod runner;
pub mod stats;
pub mod testing;

pub use smelt_codegen as codegen;
pub use smelt_ir as ir;
pub use smelt_onnx as onnx;
pub use smelt_passes as passes;
pub use smelt_verify as verify;

pub use smelt_ir::{Graph, Model, Tensor};

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a model failed.
    #[error(transparent)]
    Import(#[from] smelt_onnx::ImportError),
    /// Writing a model failed.
    #[error(transparent)]
    Export(#[from] smelt_onnx::ExportError),
    /// The graph is invalid.
    #[error(transparent)]
    Invalid(#[from] smelt_ir::VerifyErrors),
    /// The text form does not parse.
    #[error("{path}:{0}", path = .1.display())]
    Parse(String, std::path::PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {1}", path = .0.display())]
    Io(std::path::PathBuf, std::io::Error),
    /// The blob file beside a text model is corrupt.
    #[error("{path}: {1}", path = .0.display())]
    Blob(std::path::PathBuf, smelt_ir::text::BlobError),
    /// Types in a text model do not fit its ops.
    #[error("{path}: {1}", path = .0.display())]
    Infer(std::path::PathBuf, String),
}

/// The graph the native backend compiles: the model's graph after the exact `fold` pass (shape
/// subgraphs, Identity chains and BatchNormalization disappear). If fold fails, the graph as
/// it was.
pub fn native_graph(model: &Model) -> Graph {
    let mut g = model.graph.clone();
    if let Ok(p) = smelt_passes::Pipeline::parse("fold") {
        let run = smelt_passes::RunOptions {
            verify_ir: false,
            ..Default::default()
        };
        if p.run(&mut g, &mut smelt_passes::PassCtx::new(), &run)
            .is_err()
        {
            g = model.graph.clone();
        }
    }
    g
}

/// Compiles a model to native code in this process ([`native_graph`], then the JIT).
pub fn compile_jit(
    model: &Model,
    opts: &smelt_codegen::jit::Options,
) -> Result<smelt_codegen::jit::CompiledModel, smelt_codegen::CodegenError> {
    smelt_codegen::jit::compile(&native_graph(model), opts)
}

/// Every node the native backend cannot compile ([`native_graph`], then the backend's check):
/// exactly what [`compile_jit`] would refuse.
pub fn check_native(model: &Model) -> Vec<smelt_codegen::Unsupported> {
    smelt_codegen::check(&native_graph(model))
}

/// [`check_native`] with the given graph inputs frozen to constants, as [`compile_jit`] sees
/// the graph with [`smelt_codegen::jit::Options::const_inputs`]. Fails when a value does not
/// fit its input.
pub fn check_native_frozen(
    model: &Model,
    values: &[(String, Tensor)],
) -> Result<Vec<smelt_codegen::Unsupported>, smelt_codegen::CodegenError> {
    smelt_codegen::check_frozen(&native_graph(model), values)
}

/// The graph inputs whose values the native backend needs at compile time (reduction axes,
/// shapes, bounds: [`smelt_codegen::bind::compile_time_inputs`]), paired with their tensors
/// from `inputs` (given in the graph's input order): what `smelt run` freezes through
/// [`smelt_codegen::jit::Options::const_inputs`]. The compiled model then takes the other
/// inputs, in order.
pub fn compile_time_values(model: &Model, inputs: &[Tensor]) -> Vec<(String, Tensor)> {
    let names = smelt_codegen::bind::compile_time_inputs(&model.graph, inputs);
    model
        .graph
        .inputs()
        .iter()
        .zip(inputs)
        .filter(|(v, _)| names.contains(&model.graph.value(**v).name))
        .map(|(v, t)| (model.graph.value(*v).name.clone(), t.clone()))
        .collect()
}

/// True for paths in smelt's text form (`.smelt`).
pub fn is_text_path(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "smelt")
}

/// The blob file that holds a text model's constants: `G.smelt` → `G.smelt.blob`.
pub fn blob_path(text_path: &std::path::Path) -> std::path::PathBuf {
    let mut s = text_path.as_os_str().to_owned();
    s.push(".blob");
    std::path::PathBuf::from(s)
}

/// Loads a model: ONNX (`.onnx`), or smelt's text form (`.smelt`, its constants read from the
/// blob file beside it). The graph is verified.
pub fn load(path: &std::path::Path) -> Result<Model, Error> {
    let m = if is_text_path(path) {
        load_text(path)?
    } else {
        smelt_onnx::load_model(path)?
    };
    smelt_ir::verify(&m.graph)?;
    Ok(m)
}

fn load_text(path: &std::path::Path) -> Result<Model, Error> {
    let src = std::fs::read_to_string(path).map_err(|e| Error::Io(path.to_path_buf(), e))?;
    let blob = blob_path(path);
    let store = if blob.exists() {
        let bytes = std::fs::read(&blob).map_err(|e| Error::Io(blob.clone(), e))?;
        smelt_ir::text::BlobStore::read(&bytes).map_err(|e| Error::Blob(blob.clone(), e))?
    } else {
        smelt_ir::text::BlobStore::new()
    };
    let mut m = Model::from_text(&src, &store).map_err(|e| {
        let mut msg = e.render(&src);
        if !blob.exists() && msg.contains('#') {
            msg.push_str(&format!(
                "\n(no blob file {} beside the text)",
                blob.display()
            ));
        }
        Error::Parse(msg, path.to_path_buf())
    })?;
    smelt_ir::infer::infer_graph(&mut m.graph).map_err(|e| {
        Error::Infer(
            path.to_path_buf(),
            e.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    Ok(m)
}

/// Writes a model in smelt's text form, and its hashed constants to the blob file beside it.
pub fn save_text(m: &Model, path: &std::path::Path) -> Result<(), Error> {
    std::fs::write(path, m.to_text()).map_err(|e| Error::Io(path.to_path_buf(), e))?;
    let blob = blob_path(path);
    let store = smelt_ir::text::BlobStore::from_graph(&m.graph);
    let mut bytes = vec![];
    store
        .write(&mut bytes)
        .map_err(|e| Error::Io(blob.clone(), e))?;
    std::fs::write(&blob, bytes).map_err(|e| Error::Io(blob, e))
}
