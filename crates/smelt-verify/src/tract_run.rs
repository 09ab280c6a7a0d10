//! Running an ONNX model with tract.

use crate::VerifyError;
use smelt_ir::{DType, Tensor};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::{
    self as tp, DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TVec,
};

fn terr(e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Tract(format!("{e:#}"))
}

/// Converts a smelt tensor to a tract tensor.
pub fn to_tract(t: &Tensor) -> Result<tp::Tensor, VerifyError> {
    let shape = t.dims();
    let un = |d: DType| VerifyError::Unsupported(format!("{d} tensors cannot be passed to tract"));
    let r = match t.dtype() {
        DType::F32 => tp::Tensor::from_shape(shape, &t.to_f32_vec().ok_or(un(DType::F32))?),
        DType::F64 => tp::Tensor::from_shape(shape, &t.to_f64_vec().ok_or(un(DType::F64))?),
        DType::F16 => {
            let f = tp::Tensor::from_shape(shape, &t.to_f32_vec().ok_or(un(DType::F16))?)
                .map_err(terr)?;
            return f
                .cast_to_dt(DatumType::F16)
                .map(|c| c.into_owned())
                .map_err(terr);
        }
        d @ (DType::I8
        | DType::U8
        | DType::I16
        | DType::U16
        | DType::I32
        | DType::U32
        | DType::I64
        | DType::U64
        | DType::Bool) => {
            let v = t.to_i64_vec().ok_or(un(d))?;
            match d {
                DType::I8 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as i8).collect::<Vec<_>>())
                }
                DType::U8 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as u8).collect::<Vec<_>>())
                }
                DType::I16 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as i16).collect::<Vec<_>>())
                }
                DType::U16 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as u16).collect::<Vec<_>>())
                }
                DType::I32 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as i32).collect::<Vec<_>>())
                }
                DType::U32 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as u32).collect::<Vec<_>>())
                }
                DType::U64 => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x as u64).collect::<Vec<_>>())
                }
                DType::Bool => {
                    tp::Tensor::from_shape(shape, &v.iter().map(|x| *x != 0).collect::<Vec<_>>())
                }
                _ => tp::Tensor::from_shape(shape, &v),
            }
        }
        d => return Err(un(d)),
    };
    r.map_err(terr)
}

/// Converts a tract tensor back.
pub fn from_tract(t: &tp::Tensor) -> Result<Tensor, VerifyError> {
    let dims = t.shape().to_vec();
    let dt = match t.datum_type() {
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        DatumType::I8 => DType::I8,
        DatumType::U8 => DType::U8,
        DatumType::I16 => DType::I16,
        DatumType::U16 => DType::U16,
        DatumType::I32 => DType::I32,
        DatumType::U32 => DType::U32,
        DatumType::I64 => DType::I64,
        DatumType::U64 => DType::U64,
        DatumType::Bool => DType::Bool,
        DatumType::F16 => {
            let f = t.cast_to_dt(DatumType::F32).map_err(terr)?;
            let v: Vec<f64> = f
                .to_plain_array_view::<f32>()
                .map_err(terr)?
                .iter()
                .map(|x| *x as f64)
                .collect();
            return Tensor::from_f64s(DType::F16, dims, &v)
                .map_err(|e| VerifyError::Unsupported(e.to_string()));
        }
        DatumType::TDim => {
            let c = t.cast_to_dt(DatumType::I64).map_err(terr)?;
            return from_tract(&c);
        }
        other => {
            return Err(VerifyError::Unsupported(format!(
                "tract output of type {other:?}"
            )))
        }
    };
    Tensor::from_bytes(dt, dims, t.as_bytes().to_vec())
        .map_err(|e| VerifyError::Unsupported(e.to_string()))
}

/// A model loaded into tract, typed for one set of input shapes and ready to run.
pub struct TractModel {
    plan: Arc<tp::TypedRunnableModel>,
}

impl TractModel {
    fn build(mut model: tp::InferenceModel, inputs: &[Tensor]) -> Result<TractModel, VerifyError> {
        let n = model.inputs.len();
        if inputs.len() != n {
            return Err(VerifyError::Inputs(format!(
                "the model has {n} inputs, {} given",
                inputs.len()
            )));
        }
        for (i, t) in inputs.iter().enumerate() {
            let tt = to_tract(t)?;
            let fact = InferenceFact::dt_shape(tt.datum_type(), tt.shape());
            model = model.with_input_fact(i, fact).map_err(terr)?;
        }
        let plan = model
            .into_optimized()
            .map_err(terr)?
            .into_runnable()
            .map_err(terr)?;
        Ok(TractModel { plan })
    }

    /// Runs the model.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, VerifyError> {
        let tv: TVec<tp::TValue> = inputs
            .iter()
            .map(|t| to_tract(t).map(|x| x.into()))
            .collect::<Result<_, _>>()?;
        let out = self.plan.run(tv).map_err(terr)?;
        out.iter().map(|t| from_tract(t)).collect()
    }

    /// Loads a model file for inputs shaped like `inputs`.
    pub fn load_path(path: &Path, inputs: &[Tensor]) -> Result<TractModel, VerifyError> {
        let model = tract_onnx::onnx().model_for_path(path).map_err(terr)?;
        TractModel::build(model, inputs)
    }

    /// Loads model bytes for inputs shaped like `inputs`.
    pub fn load_bytes(bytes: &[u8], inputs: &[Tensor]) -> Result<TractModel, VerifyError> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(bytes))
            .map_err(terr)?;
        TractModel::build(model, inputs)
    }
}

/// Runs a model file with tract on `inputs` (in graph-input order).
pub fn run_tract_path(path: &Path, inputs: &[Tensor]) -> Result<Vec<Tensor>, VerifyError> {
    TractModel::load_path(path, inputs)?.run(inputs)
}

/// Runs model bytes with tract on `inputs`.
pub fn run_tract_bytes(bytes: &[u8], inputs: &[Tensor]) -> Result<Vec<Tensor>, VerifyError> {
    TractModel::load_bytes(bytes, inputs)?.run(inputs)
}
