//! What passes need from the outside world, implemented with smelt's other crates: a
//! [`smelt_passes::Runner`] that runs a graph with tract (through the ONNX writer), and a
//! [`smelt_passes::TensorLoader`] that reads `.pb` (TensorProto) and `.npy` files.

use smelt_ir::{Graph, Model, Tensor};

/// Runs graphs with tract: the graph is written as ONNX at the model's opsets and run.
pub struct TractRunner {
    template: Model,
}

impl TractRunner {
    /// A runner for graphs of `model` (its opsets and IR version are used to write them).
    pub fn for_model(model: &Model) -> TractRunner {
        let mut template = model.clone();
        template.graph = Graph::new(model.graph.name.clone());
        TractRunner { template }
    }
}

impl smelt_passes::Runner for TractRunner {
    fn run(&self, g: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, String> {
        let mut m = self.template.clone();
        m.graph = g.clone();
        let bytes = smelt_onnx::model_to_bytes(&m).map_err(|e| e.to_string())?;
        smelt_verify::run_tract_bytes(&bytes, inputs).map_err(|e| e.to_string())
    }
}

/// Reads tensors named in pass options (`calib=x.pb`).
pub struct FileLoader;

impl smelt_passes::TensorLoader for FileLoader {
    fn load(&self, path: &str) -> Result<Tensor, String> {
        crate::data::read_tensor(std::path::Path::new(path)).map_err(|e| e.to_string())
    }
}
