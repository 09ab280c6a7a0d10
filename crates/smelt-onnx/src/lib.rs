//! smelt-onnx: ONNX ⇄ smelt IR.
//!
//! - [`load_model`] / [`read_model`]: ONNX file → [`smelt_ir::Model`] (IR versions 3–13,
//!   opsets 1–28, initializers in raw_data or typed fields, Constant nodes, sparse initializers
//!   (densified), external data resolved in the model's folder and refused outside it,
//!   value_info, metadata, custom domains, subgraphs). Malformed input is an [`ImportError`]
//!   naming the node or tensor, never a panic.
//! - [`save_model`] / [`model_to_bytes`]: IR → ONNX, deterministic bytes, names, opsets and
//!   metadata kept; parts of the source the IR does not model are written back.
//! - [`read_tensor_file`] / [`write_tensor_file`]: the `input_0.pb` files of the ONNX
//!   test-data layout.
//!
//! Only this crate touches onnx-protobuf.

pub mod error;
pub mod export;
pub mod import;

pub use error::{ExportError, ImportError};
pub use export::{model_to_bytes, save_model, write_tensor_file, ExportOptions};
pub use import::tensor::{read_tensor_bytes, read_tensor_file};
pub use import::{load_model, read_model};
