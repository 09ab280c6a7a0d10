//! The closed set of operations smelt understands, with typed attributes.
//!
//! Every variant of [`Op`] but three is named after the ONNX operator it stands for and has the
//! semantics of that operator in its newest opset: where an older opset took an attribute that a
//! newer one takes as an input (Reshape's shape, Slice's starts, Reduce's axes, Clip's bounds, …),
//! the ONNX front end turns the attribute into a constant input. The three others are
//! [`Op::Input`] (a graph input), [`Op::Const`] (a constant) and [`Op::Opaque`] (any other node,
//! kept verbatim so that every model round-trips).
//!
//! Attribute fields use the ONNX attribute names ([`Op::attrs`] / [`Op::from_parts`]), which
//! makes the text form, the ONNX reader and the ONNX writer one table. Adding an op: see
//! docs/dev/adding-an-op.md.

use crate::attr::{Attr, AttrValue};
use crate::Tensor;

/// Errors from building a typed op out of a name and attributes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OpError {
    /// The op type is not one smelt types.
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    /// A required attribute is absent.
    #[error("{op}: missing required attribute `{attr}`")]
    MissingAttr {
        op: &'static str,
        attr: &'static str,
    },
    /// An attribute has the wrong kind.
    #[error("{op}: attribute `{attr}` has the wrong kind")]
    BadAttr { op: &'static str, attr: String },
    /// An attribute the op does not know.
    #[error("{op}: unknown attribute `{attr}`")]
    UnknownAttr { op: &'static str, attr: String },
}

/// Any ONNX node smelt does not type: kept verbatim.
#[derive(Clone, Debug, PartialEq)]
pub struct OpaqueOp {
    /// The operator domain (`""` is the default ONNX domain).
    pub domain: String,
    /// The ONNX op_type.
    pub op_type: String,
    /// All attributes, in their original order.
    pub attrs: Vec<(String, Attr)>,
}

fn take(attrs: &mut Vec<(String, Attr)>, name: &str) -> Option<Attr> {
    let i = attrs.iter().position(|(n, _)| n == name)?;
    Some(attrs.remove(i).1)
}

macro_rules! attr_get {
    ($op:literal, $attrs:ident, $aname:literal, $fty:ty, $default:expr) => {
        match take($attrs, $aname) {
            Some(a) => <$fty as AttrValue>::from_attr(a).ok_or(OpError::BadAttr {
                op: $op,
                attr: $aname.to_string(),
            })?,
            None => $default,
        }
    };
    ($op:literal, $attrs:ident, $aname:literal, $fty:ty) => {
        match take($attrs, $aname) {
            Some(a) => <$fty as AttrValue>::from_attr(a).ok_or(OpError::BadAttr {
                op: $op,
                attr: $aname.to_string(),
            })?,
            None => {
                return Err(OpError::MissingAttr {
                    op: $op,
                    attr: $aname,
                })
            }
        }
    };
}

macro_rules! attr_put {
    ($v:ident, $val:expr, $aname:literal, $default:expr) => {
        #[allow(clippy::float_cmp)]
        if $val != $default {
            $v.push(($aname, AttrValue::to_attr(&$val)));
        }
    };
    ($v:ident, $val:expr, $aname:literal) => {
        $v.push(($aname, AttrValue::to_attr(&$val)));
    };
}

macro_rules! define_ops {
    ($(
        $(#[$doc:meta])*
        $name:ident $onnx:literal { $( $field:ident : $fty:ty $(= $default:expr)? => $aname:literal ),* $(,)? }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq)]
            pub struct $name { $( #[doc = concat!("ONNX attribute `", $aname, "`.")] pub $field: $fty, )* }

            #[allow(clippy::ptr_arg, clippy::vec_init_then_push)]
            impl $name {
                #[allow(unused_mut)]
                fn attrs(&self) -> Vec<(&'static str, Attr)> {
                    let mut v = Vec::new();
                    $( attr_put!(v, self.$field, $aname $(, $default)?); )*
                    v
                }
                #[allow(unused_variables)]
                fn from_attrs(attrs: &mut Vec<(String, Attr)>) -> Result<Self, OpError> {
                    Ok($name { $( $field: attr_get!($onnx, attrs, $aname, $fty $(, $default)?), )* })
                }
            }
        )*

        /// One operation of the graph.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            /// A graph input (or, in a subgraph, a value captured from the enclosing graph).
            Input,
            /// A constant tensor.
            Const(Tensor),
            $( $(#[$doc])* $name($name), )*
            /// Any other node, kept verbatim.
            Opaque(OpaqueOp),
        }

        impl Op {
            /// The op's name: the ONNX op_type for typed and opaque ops.
            pub fn op_type(&self) -> &str {
                match self {
                    Op::Input => "Input",
                    Op::Const(_) => "Const",
                    $( Op::$name(_) => $onnx, )*
                    Op::Opaque(o) => &o.op_type,
                }
            }

            /// The attributes that differ from their defaults, sorted by name
            /// (opaque ops: all attributes in their order).
            pub fn attrs(&self) -> Vec<(String, Attr)> {
                let mut v: Vec<(String, Attr)> = match self {
                    Op::Input | Op::Const(_) => vec![],
                    $( Op::$name(o) => o.attrs().into_iter().map(|(k, a)| (k.to_string(), a)).collect(), )*
                    Op::Opaque(o) => return o.attrs.clone(),
                };
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            }

            /// Builds a typed op from its ONNX op_type (default domain) and attributes.
            /// Fails on an unknown op or an attribute the typed op does not model, so that the
            /// caller can keep the node opaque instead.
            pub fn from_parts(op_type: &str, mut attrs: Vec<(String, Attr)>) -> Result<Op, OpError> {
                let attrs = &mut attrs;
                let op = match op_type {
                    $( $onnx => Op::$name($name::from_attrs(attrs)?), )*
                    _ => return Err(OpError::UnknownOp(op_type.to_string())),
                };
                if let Some((name, _)) = attrs.first() {
                    return Err(OpError::UnknownAttr { op: static_name(op_type), attr: name.clone() });
                }
                Ok(op)
            }

            /// Every typed op name, in declaration order.
            pub fn typed_names() -> &'static [&'static str] {
                &[$($onnx),*]
            }
        }

        fn static_name(op_type: &str) -> &'static str {
            match op_type {
                $( $onnx => $onnx, )*
                _ => "?",
            }
        }
    };
}

define_ops! {
    // ---- elementwise, one input --------------------------------------------------------------
    /// `max(x, 0)`.
    Relu "Relu" {}
    /// `1 / (1 + exp(-x))`.
    Sigmoid "Sigmoid" {}
    /// Hyperbolic tangent.
    Tanh "Tanh" {}
    /// The error function.
    Erf "Erf" {}
    /// `exp(x)`.
    Exp "Exp" {}
    /// Natural logarithm.
    Log "Log" {}
    /// Square root.
    Sqrt "Sqrt" {}
    /// `1 / x`.
    Reciprocal "Reciprocal" {}
    /// `-x`.
    Neg "Neg" {}
    /// `|x|`.
    Abs "Abs" {}
    /// `ln(1 + exp(x))`.
    Softplus "Softplus" {}
    /// `x / (1 + |x|)`.
    Softsign "Softsign" {}
    /// Round down.
    Floor "Floor" {}
    /// Round up.
    Ceil "Ceil" {}
    /// Round half to even.
    Round "Round" {}
    /// Sign: -1, 0 or 1.
    Sign "Sign" {}
    /// Sine.
    Sin "Sin" {}
    /// Cosine.
    Cos "Cos" {}
    /// Logical not.
    Not "Not" {}
    /// NaN test.
    IsNaN "IsNaN" {}
    /// `x` if `x >= 0` else `alpha * x`.
    LeakyRelu "LeakyRelu" { alpha: f32 = 0.01 => "alpha" }
    /// `x` if `x > 0` else `alpha * (exp(x) - 1)`.
    Elu "Elu" { alpha: f32 = 1.0 => "alpha" }
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid "HardSigmoid" { alpha: f32 = 0.2 => "alpha", beta: f32 = 0.5 => "beta" }
    /// `x * max(0, min(1, x / 6 + 1 / 2))`.
    HardSwish "HardSwish" {}
    /// Gaussian error linear unit, exact (`none`) or `tanh` approximation.
    Gelu "Gelu" { approximate: String = String::from("none") => "approximate" }
    /// Clamp into [min, max]; inputs: x, min?, max?.
    Clip "Clip" {}
    /// Type conversion.
    Cast "Cast" { to: crate::DType => "to", saturate: i64 = 1 => "saturate" }
    /// Passes its input through.
    Identity "Identity" {}
    /// Inference-mode dropout: inputs data, ratio?, training_mode?; outputs output, mask?.
    Dropout "Dropout" { seed: Option<i64> = None => "seed" }

    // ---- elementwise, broadcasting ------------------------------------------------------------
    /// `a + b`.
    Add "Add" {}
    /// `a - b`.
    Sub "Sub" {}
    /// `a * b`.
    Mul "Mul" {}
    /// `a / b` (integers: truncating).
    Div "Div" {}
    /// `a ^ b`.
    Pow "Pow" {}
    /// Remainder (`fmod=1`: sign of the dividend; else of the divisor).
    Mod "Mod" { fmod: i64 = 0 => "fmod" }
    /// `x` if `x >= 0` else `slope * x`.
    PRelu "PRelu" {}
    /// `a == b`.
    Equal "Equal" {}
    /// `a < b`.
    Less "Less" {}
    /// `a > b`.
    Greater "Greater" {}
    /// `a <= b`.
    LessOrEqual "LessOrEqual" {}
    /// `a >= b`.
    GreaterOrEqual "GreaterOrEqual" {}
    /// Logical and.
    And "And" {}
    /// Logical or.
    Or "Or" {}
    /// Logical xor.
    Xor "Xor" {}
    /// Elementwise select: inputs cond, x, y.
    Where "Where" {}
    /// Elementwise minimum of any number of inputs.
    Min "Min" {}
    /// Elementwise maximum of any number of inputs.
    Max "Max" {}
    /// Elementwise sum of any number of inputs.
    Sum "Sum" {}
    /// Elementwise mean of any number of inputs.
    Mean "Mean" {}

    // ---- linear algebra and convolution -------------------------------------------------------
    /// `alpha * A' B' + beta * C`.
    Gemm "Gemm" {
        alpha: f32 = 1.0 => "alpha",
        beta: f32 = 1.0 => "beta",
        trans_a: bool = false => "transA",
        trans_b: bool = false => "transB",
    }
    /// numpy matmul (batched, broadcasting).
    MatMul "MatMul" {}
    /// N-d convolution.
    Conv "Conv" {
        auto_pad: String = String::from("NOTSET") => "auto_pad",
        dilations: Option<Vec<i64>> = None => "dilations",
        group: i64 = 1 => "group",
        kernel_shape: Option<Vec<i64>> = None => "kernel_shape",
        pads: Option<Vec<i64>> = None => "pads",
        strides: Option<Vec<i64>> = None => "strides",
    }
    /// N-d transposed convolution.
    ConvTranspose "ConvTranspose" {
        auto_pad: String = String::from("NOTSET") => "auto_pad",
        dilations: Option<Vec<i64>> = None => "dilations",
        group: i64 = 1 => "group",
        kernel_shape: Option<Vec<i64>> = None => "kernel_shape",
        output_padding: Option<Vec<i64>> = None => "output_padding",
        output_shape: Option<Vec<i64>> = None => "output_shape",
        pads: Option<Vec<i64>> = None => "pads",
        strides: Option<Vec<i64>> = None => "strides",
    }

    // ---- normalisation ------------------------------------------------------------------------
    /// Batch normalisation with running statistics: X, scale, B, mean, var.
    BatchNormalization "BatchNormalization" {
        epsilon: f32 = 1e-5 => "epsilon",
        momentum: f32 = 0.9 => "momentum",
        training_mode: i64 = 0 => "training_mode",
    }
    /// Per-instance, per-channel normalisation.
    InstanceNormalization "InstanceNormalization" { epsilon: f32 = 1e-5 => "epsilon" }
    /// Layer normalisation over the axes from `axis` on.
    LayerNormalization "LayerNormalization" {
        axis: i64 = -1 => "axis",
        epsilon: f32 = 1e-5 => "epsilon",
        stash_type: i64 = 1 => "stash_type",
    }
    /// Local response normalisation across channels.
    LRN "LRN" {
        alpha: f32 = 1e-4 => "alpha",
        beta: f32 = 0.75 => "beta",
        bias: f32 = 1.0 => "bias",
        size: i64 => "size",
    }
    /// Softmax along one axis.
    Softmax "Softmax" { axis: i64 = -1 => "axis" }
    /// Log of softmax along one axis.
    LogSoftmax "LogSoftmax" { axis: i64 = -1 => "axis" }

    // ---- pooling ------------------------------------------------------------------------------
    /// Max pooling; outputs Y, Indices?.
    MaxPool "MaxPool" {
        auto_pad: String = String::from("NOTSET") => "auto_pad",
        ceil_mode: i64 = 0 => "ceil_mode",
        dilations: Option<Vec<i64>> = None => "dilations",
        kernel_shape: Vec<i64> => "kernel_shape",
        pads: Option<Vec<i64>> = None => "pads",
        storage_order: i64 = 0 => "storage_order",
        strides: Option<Vec<i64>> = None => "strides",
    }
    /// Average pooling.
    AveragePool "AveragePool" {
        auto_pad: String = String::from("NOTSET") => "auto_pad",
        ceil_mode: i64 = 0 => "ceil_mode",
        count_include_pad: i64 = 0 => "count_include_pad",
        dilations: Option<Vec<i64>> = None => "dilations",
        kernel_shape: Vec<i64> => "kernel_shape",
        pads: Option<Vec<i64>> = None => "pads",
        strides: Option<Vec<i64>> = None => "strides",
    }
    /// Mean over all spatial positions.
    GlobalAveragePool "GlobalAveragePool" {}
    /// Max over all spatial positions.
    GlobalMaxPool "GlobalMaxPool" {}

    // ---- reductions (axes as an optional second input) ----------------------------------------
    /// Mean over axes.
    ReduceMean "ReduceMean" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Sum over axes.
    ReduceSum "ReduceSum" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Max over axes.
    ReduceMax "ReduceMax" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Min over axes.
    ReduceMin "ReduceMin" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Product over axes.
    ReduceProd "ReduceProd" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Euclidean norm over axes.
    ReduceL2 "ReduceL2" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Sum of absolute values over axes.
    ReduceL1 "ReduceL1" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Sum of squares over axes.
    ReduceSumSquare "ReduceSumSquare" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// log(sum(exp)) over axes.
    ReduceLogSumExp "ReduceLogSumExp" { keepdims: i64 = 1 => "keepdims", noop_with_empty_axes: i64 = 0 => "noop_with_empty_axes" }
    /// Index of the maximum along an axis.
    ArgMax "ArgMax" { axis: i64 = 0 => "axis", keepdims: i64 = 1 => "keepdims", select_last_index: i64 = 0 => "select_last_index" }
    /// Index of the minimum along an axis.
    ArgMin "ArgMin" { axis: i64 = 0 => "axis", keepdims: i64 = 1 => "keepdims", select_last_index: i64 = 0 => "select_last_index" }
    /// The k largest (or smallest) values and their indices; inputs X, K.
    TopK "TopK" { axis: i64 = -1 => "axis", largest: i64 = 1 => "largest", sorted: i64 = 1 => "sorted" }

    // ---- shape and data movement --------------------------------------------------------------
    /// Reshape to 2-D at `axis`.
    Flatten "Flatten" { axis: i64 = 1 => "axis" }
    /// Reshape to the shape given by the second input.
    Reshape "Reshape" { allowzero: i64 = 0 => "allowzero" }
    /// Remove size-1 axes (axes: optional second input).
    Squeeze "Squeeze" {}
    /// Insert size-1 axes (axes: second input).
    Unsqueeze "Unsqueeze" {}
    /// Permute axes.
    Transpose "Transpose" { perm: Option<Vec<i64>> = None => "perm" }
    /// Join along an axis.
    Concat "Concat" { axis: i64 => "axis" }
    /// Split along an axis (split sizes: optional second input).
    Split "Split" { axis: i64 = 0 => "axis", num_outputs: Option<i64> = None => "num_outputs" }
    /// Slice; inputs data, starts, ends, axes?, steps?.
    Slice "Slice" {}
    /// Gather along an axis.
    Gather "Gather" { axis: i64 = 0 => "axis" }
    /// Gather elements along an axis (same rank indices).
    GatherElements "GatherElements" { axis: i64 = 0 => "axis" }
    /// Broadcast to a shape.
    Expand "Expand" {}
    /// Pad; inputs data, pads, constant_value?, axes?.
    Pad "Pad" { mode: String = String::from("constant") => "mode" }
    /// Repeat along each axis.
    Tile "Tile" {}
    /// The shape of the input as a 1-D i64 tensor.
    Shape "Shape" { start: i64 = 0 => "start", end: Option<i64> = None => "end" }
    /// The element count of the input.
    Size "Size" {}
    /// A tensor of the given shape filled with one value.
    ConstantOfShape "ConstantOfShape" { value: Option<Tensor> = None => "value" }
    /// `start, start + delta, …` below `limit`.
    Range "Range" {}
    /// The upper (or lower) triangle of the last two dims, from diagonal `k` (input 1, default
    /// 0) on; the rest zero. Exporters build causal attention masks with it.
    Trilu "Trilu" { upper: i64 = 1 => "upper" }
    /// Resize (nearest, linear, cubic); inputs X, roi?, scales?, sizes?.
    Resize "Resize" {
        antialias: i64 = 0 => "antialias",
        axes: Option<Vec<i64>> = None => "axes",
        coordinate_transformation_mode: String = String::from("half_pixel") => "coordinate_transformation_mode",
        cubic_coeff_a: f32 = -0.75 => "cubic_coeff_a",
        exclude_outside: i64 = 0 => "exclude_outside",
        extrapolation_value: f32 = 0.0 => "extrapolation_value",
        keep_aspect_ratio_policy: String = String::from("stretch") => "keep_aspect_ratio_policy",
        mode: String = String::from("nearest") => "mode",
        nearest_mode: String = String::from("round_prefer_floor") => "nearest_mode",
    }

    // ---- quantisation -------------------------------------------------------------------------
    /// `saturate(round(x / scale) + zero_point)`; inputs x, y_scale, y_zero_point?.
    QuantizeLinear "QuantizeLinear" {
        axis: i64 = 1 => "axis",
        block_size: i64 = 0 => "block_size",
        output_dtype: i64 = 0 => "output_dtype",
        precision: i64 = 0 => "precision",
        saturate: i64 = 1 => "saturate",
    }
    /// `(x - zero_point) * scale`; inputs x, x_scale, x_zero_point?.
    DequantizeLinear "DequantizeLinear" {
        axis: i64 = 1 => "axis",
        block_size: i64 = 0 => "block_size",
        output_dtype: i64 = 0 => "output_dtype",
    }

    // ---- control flow and recurrence ----------------------------------------------------------
    /// Runs one of two subgraphs on a boolean condition.
    If "If" { else_branch: Box<crate::Graph> => "else_branch", then_branch: Box<crate::Graph> => "then_branch" }
    /// Runs a body subgraph while a trip count and a condition allow.
    Loop "Loop" { body: Box<crate::Graph> => "body" }
    /// Long short-term memory; inputs X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?.
    LSTM "LSTM" {
        activation_alpha: Option<Vec<f32>> = None => "activation_alpha",
        activation_beta: Option<Vec<f32>> = None => "activation_beta",
        activations: Option<Vec<String>> = None => "activations",
        clip: Option<f32> = None => "clip",
        direction: String = String::from("forward") => "direction",
        hidden_size: Option<i64> = None => "hidden_size",
        input_forget: i64 = 0 => "input_forget",
        layout: i64 = 0 => "layout",
    }
    /// Gated recurrent unit; inputs X, W, R, B?, sequence_lens?, initial_h?.
    GRU "GRU" {
        activation_alpha: Option<Vec<f32>> = None => "activation_alpha",
        activation_beta: Option<Vec<f32>> = None => "activation_beta",
        activations: Option<Vec<String>> = None => "activations",
        clip: Option<f32> = None => "clip",
        direction: String = String::from("forward") => "direction",
        hidden_size: Option<i64> = None => "hidden_size",
        layout: i64 = 0 => "layout",
        linear_before_reset: i64 = 0 => "linear_before_reset",
    }
}

impl Op {
    /// The subgraphs held in attributes (If branches, Loop body, opaque ops' graphs).
    pub fn subgraphs(&self) -> Vec<&crate::Graph> {
        match self {
            Op::If(o) => vec![&o.then_branch, &o.else_branch],
            Op::Loop(o) => vec![&o.body],
            Op::Opaque(o) => o.attrs.iter().flat_map(|(_, a)| a.graphs()).collect(),
            _ => vec![],
        }
    }

    /// The subgraphs held in attributes, mutably.
    pub fn subgraphs_mut(&mut self) -> Vec<&mut crate::Graph> {
        match self {
            Op::If(o) => vec![&mut o.then_branch, &mut o.else_branch],
            Op::Loop(o) => vec![&mut o.body],
            Op::Opaque(o) => o
                .attrs
                .iter_mut()
                .flat_map(|(_, a)| a.graphs_mut())
                .collect(),
            _ => vec![],
        }
    }

    /// The domain of the op (`""`: ONNX's default domain).
    pub fn domain(&self) -> &str {
        match self {
            Op::Opaque(o) => &o.domain,
            _ => "",
        }
    }

    /// True for ops whose every output element depends only on the elements at the same
    /// (broadcast) position of the inputs.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Relu(_)
                | Op::Sigmoid(_)
                | Op::Tanh(_)
                | Op::Erf(_)
                | Op::Exp(_)
                | Op::Log(_)
                | Op::Sqrt(_)
                | Op::Reciprocal(_)
                | Op::Neg(_)
                | Op::Abs(_)
                | Op::Softplus(_)
                | Op::Softsign(_)
                | Op::Floor(_)
                | Op::Ceil(_)
                | Op::Round(_)
                | Op::Sign(_)
                | Op::Sin(_)
                | Op::Cos(_)
                | Op::Not(_)
                | Op::IsNaN(_)
                | Op::LeakyRelu(_)
                | Op::Elu(_)
                | Op::HardSigmoid(_)
                | Op::HardSwish(_)
                | Op::Gelu(_)
                | Op::Clip(_)
                | Op::Cast(_)
                | Op::Identity(_)
                | Op::Add(_)
                | Op::Sub(_)
                | Op::Mul(_)
                | Op::Div(_)
                | Op::Pow(_)
                | Op::Mod(_)
                | Op::PRelu(_)
                | Op::Equal(_)
                | Op::Less(_)
                | Op::Greater(_)
                | Op::LessOrEqual(_)
                | Op::GreaterOrEqual(_)
                | Op::And(_)
                | Op::Or(_)
                | Op::Xor(_)
                | Op::Where(_)
                | Op::Min(_)
                | Op::Max(_)
                | Op::Sum(_)
                | Op::Mean(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip_and_defaults_are_omitted() {
        let op = Op::from_parts("Gemm", vec![("transB".into(), Attr::Int(1))]).unwrap();
        assert_eq!(
            op,
            Op::Gemm(Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true
            })
        );
        assert_eq!(op.attrs(), vec![("transB".to_string(), Attr::Int(1))]);
        assert_eq!(op.op_type(), "Gemm");
    }

    #[test]
    fn unknown_attrs_and_missing_required_attrs_are_refused() {
        assert!(matches!(
            Op::from_parts("Relu", vec![("foo".into(), Attr::Int(1))]),
            Err(OpError::UnknownAttr { .. })
        ));
        assert!(matches!(
            Op::from_parts("Concat", vec![]),
            Err(OpError::MissingAttr { .. })
        ));
        assert!(matches!(
            Op::from_parts("NoSuchOp", vec![]),
            Err(OpError::UnknownOp(_))
        ));
        assert!(matches!(
            Op::from_parts("Concat", vec![("axis".into(), Attr::Float(1.5))]),
            Err(OpError::BadAttr { .. })
        ));
    }
}
