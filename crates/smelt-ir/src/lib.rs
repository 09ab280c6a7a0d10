//! smelt-ir: the graph IR every stage of smelt shares.
//!
//! A [`Model`] holds one [`Graph`]: a petgraph `StableDiGraph` whose nodes are operations
//! ([`Op`]: a closed enum with typed attributes, plus [`Op::Opaque`] for any other ONNX node)
//! and whose edges carry one value from an output port to an input port. Handles
//! ([`NodeId`], [`ValueId`]) stay valid while passes add and remove other nodes.
//!
//! Invariants (checked by [`verify()`], which every stage runs in tests):
//! - the graph is acyclic and each input port has at most one producer;
//! - every value has a [`Type`]: a dtype and a shape whose dims are known, symbolic or unknown;
//!   the native backend needs every dim bound, the ONNX path does not;
//! - value names are unique across a graph and its subgraphs (ONNX's SSA rule), so the text
//!   form and the ONNX writer can use them as they are;
//! - constants are [`Tensor`]s behind an `Arc`: copying a node never copies weights;
//! - subgraphs (If, Loop, opaque ops) take values of enclosing graphs only through captures,
//!   which the owning node also takes as trailing inputs.
//!
//! This crate knows nothing of ONNX protobufs, Cranelift or tract.

pub mod attr;
pub mod dtype;
pub mod graph;
pub mod infer;
pub mod ops;
pub mod tensor;
pub mod text;
pub mod types;
pub mod verify;

pub use attr::{Attr, AttrValue};
pub use dtype::DType;
pub use graph::{Graph, GraphError, Node, NodeId, Value, ValueId};
pub use ops::{Op, OpError, OpaqueOp};
pub use tensor::{Tensor, TensorError};
pub use types::{Dim, Shape, TensorType, Type};
pub use verify::{verify, GraphInfo, VerifyError, VerifyErrors};

/// A model: the main graph and what a model file says about it.
#[derive(Clone, Debug)]
pub struct Model {
    /// The main graph.
    pub graph: Graph,
    /// Operator set imports: (domain, version); `""` is the default ONNX domain.
    pub opsets: Vec<(String, i64)>,
    /// The ONNX IR version the model was read with (written back unless raised).
    pub ir_version: i64,
    /// Producer name.
    pub producer_name: String,
    /// Producer version.
    pub producer_version: String,
    /// Model domain.
    pub domain: String,
    /// Model version.
    pub model_version: i64,
    /// Documentation.
    pub doc_string: String,
    /// Key/value metadata.
    pub metadata: Vec<(String, String)>,
    /// Parts of the source file the IR does not model (local functions, training info, fields
    /// newer than the reader), kept by the front end for its back end to write back.
    pub passthrough: Vec<u8>,
}

impl Model {
    /// A model around a graph, with the default ONNX opset `opset`.
    pub fn new(graph: Graph, opset: i64) -> Model {
        Model {
            graph,
            opsets: vec![(String::new(), opset)],
            ir_version: 8,
            producer_name: "smelt".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            domain: String::new(),
            model_version: 0,
            doc_string: String::new(),
            metadata: vec![],
            passthrough: vec![],
        }
    }

    /// The version of the default ONNX domain this model imports.
    pub fn opset(&self) -> i64 {
        self.opsets
            .iter()
            .find(|(d, _)| d.is_empty() || d == "ai.onnx")
            .map(|(_, v)| *v)
            .unwrap_or(1)
    }

    /// The text form (see [`text`]).
    pub fn to_text(&self) -> String {
        text::model_to_text(self)
    }
}

impl Model {
    /// Parses the text form of a model (see [`text::parse_model`]); `#hash` constants come
    /// from `consts` ([`text::NoConsts`], or a [`text::BlobStore`] read from the blob file).
    pub fn from_text(src: &str, consts: &dyn text::ConstSource) -> Result<Model, text::ParseError> {
        text::parse_model(src, consts)
    }
}

impl Graph {
    /// The text form (see [`text`]).
    pub fn to_text(&self) -> String {
        text::to_text(self)
    }

    /// Parses the text form of a graph (see [`text::parse_graph`]); `#hash` constants come
    /// from `consts` ([`text::NoConsts`], or a [`text::BlobStore`] read from the blob file).
    pub fn from_text(src: &str, consts: &dyn text::ConstSource) -> Result<Graph, text::ParseError> {
        text::parse_graph(src, consts)
    }
}
