//! Value types: tensors with (possibly symbolic) shapes, and the sequence, optional and map
//! types that some ONNX models carry through.

use crate::DType;
use std::fmt;

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known extent.
    Known(u64),
    /// A named symbol (`batch`), equal wherever the same name appears in one graph.
    Sym(String),
    /// Nothing is known about this extent.
    Unknown,
}

impl Dim {
    /// The extent, when it is known.
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(n) => Some(*n),
            _ => None,
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Dim {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// A tensor shape: a list of dims. The rank itself may be unknown ([`TensorType::shape`] is `None`).
pub type Shape = Vec<Dim>;

/// The known extents of a shape, when every dim is known.
pub fn static_shape(shape: &[Dim]) -> Option<Vec<usize>> {
    shape
        .iter()
        .map(|d| d.known().and_then(|n| usize::try_from(n).ok()))
        .collect()
}

/// The type of a tensor value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    /// Element type; `None` when not known (opaque ops without value_info).
    pub dtype: Option<DType>,
    /// The shape; `None` when not even the rank is known.
    pub shape: Option<Shape>,
}

impl TensorType {
    /// A tensor type with a fully known shape.
    pub fn new(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType {
            dtype: Some(dtype),
            shape: Some(dims.iter().map(|d| Dim::Known(*d as u64)).collect()),
        }
    }
    /// A tensor type with a dtype and a shape of unknown rank.
    pub fn unranked(dtype: DType) -> TensorType {
        TensorType {
            dtype: Some(dtype),
            shape: None,
        }
    }
    /// The known extents, when every dim is known.
    pub fn static_dims(&self) -> Option<Vec<usize>> {
        self.shape.as_deref().and_then(static_shape)
    }
}

/// The type of any value an edge can carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// A dense tensor.
    Tensor(TensorType),
    /// A sparse tensor (carried, never computed on).
    SparseTensor(TensorType),
    /// A sequence of values of one type.
    Sequence(Box<Type>),
    /// An optional value.
    Optional(Box<Type>),
    /// A map from a key element type to a value type.
    Map(DType, Box<Type>),
    /// Nothing is known (an opaque op's output without value_info).
    Unknown,
}

impl Type {
    /// A tensor type with a fully known shape.
    pub fn tensor(dtype: DType, dims: &[usize]) -> Type {
        Type::Tensor(TensorType::new(dtype, dims))
    }
    /// The tensor type, if this is a dense tensor.
    pub fn as_tensor(&self) -> Option<&TensorType> {
        match self {
            Type::Tensor(t) => Some(t),
            _ => None,
        }
    }
    /// The element type of a dense tensor.
    pub fn dtype(&self) -> Option<DType> {
        self.as_tensor().and_then(|t| t.dtype)
    }
    /// The shape of a dense tensor, if its rank is known.
    pub fn shape(&self) -> Option<&[Dim]> {
        self.as_tensor().and_then(|t| t.shape.as_deref())
    }
    /// The known extents of a dense tensor, when every dim is known.
    pub fn static_dims(&self) -> Option<Vec<usize>> {
        self.as_tensor().and_then(|t| t.static_dims())
    }
    /// True when `self` and `other` may describe the same value: unknown parts agree with
    /// anything, symbols agree with any extent (they are bound later).
    pub fn compatible(&self, other: &Type) -> bool {
        match (self, other) {
            (Type::Unknown, _) | (_, Type::Unknown) => true,
            (Type::Tensor(a), Type::Tensor(b)) | (Type::SparseTensor(a), Type::SparseTensor(b)) => {
                let dt = match (a.dtype, b.dtype) {
                    (Some(x), Some(y)) => x == y,
                    _ => true,
                };
                let sh = match (&a.shape, &b.shape) {
                    (Some(x), Some(y)) => {
                        x.len() == y.len()
                            && x.iter().zip(y).all(|(p, q)| match (p, q) {
                                (Dim::Known(m), Dim::Known(n)) => m == n,
                                _ => true,
                            })
                    }
                    _ => true,
                };
                dt && sh
            }
            (Type::Sequence(a), Type::Sequence(b)) | (Type::Optional(a), Type::Optional(b)) => {
                a.compatible(b)
            }
            (Type::Map(k, a), Type::Map(l, b)) => k == l && a.compatible(b),
            _ => false,
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.dtype {
            Some(d) => write!(f, "{d}")?,
            None => f.write_str("?")?,
        }
        match &self.shape {
            None => f.write_str("[*]"),
            Some(dims) => {
                f.write_str("[")?;
                for (i, d) in dims.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Tensor(t) => write!(f, "{t}"),
            Type::SparseTensor(t) => write!(f, "sparse<{t}>"),
            Type::Sequence(t) => write!(f, "seq<{t}>"),
            Type::Optional(t) => write!(f, "opt<{t}>"),
            Type::Map(k, v) => write!(f, "map<{k},{v}>"),
            Type::Unknown => f.write_str("?"),
        }
    }
}
