//! Attribute values, shared by typed ops (as their field types) and opaque ops (verbatim).

use crate::{DType, Graph, Tensor, Type};

/// One attribute value. The variants follow ONNX's `AttributeProto` kinds, plus [`Attr::DType`]
/// so that typed ops print `to=f32` rather than a type number.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer.
    Int(i64),
    /// A float.
    Float(f32),
    /// A byte string (usually UTF-8).
    Str(Vec<u8>),
    /// A tensor.
    Tensor(Tensor),
    /// A subgraph.
    Graph(Box<Graph>),
    /// A type.
    Type(Type),
    /// A list of integers.
    Ints(Vec<i64>),
    /// A list of floats.
    Floats(Vec<f32>),
    /// A list of byte strings.
    Strs(Vec<Vec<u8>>),
    /// A list of tensors.
    Tensors(Vec<Tensor>),
    /// A list of subgraphs.
    Graphs(Vec<Graph>),
    /// A list of types.
    Types(Vec<Type>),
    /// An element type (an integer in ONNX).
    DType(DType),
}

impl Attr {
    /// The subgraphs this attribute holds.
    pub fn graphs(&self) -> Vec<&Graph> {
        match self {
            Attr::Graph(g) => vec![g],
            Attr::Graphs(gs) => gs.iter().collect(),
            _ => vec![],
        }
    }
    /// The subgraphs this attribute holds, mutably.
    pub fn graphs_mut(&mut self) -> Vec<&mut Graph> {
        match self {
            Attr::Graph(g) => vec![g],
            Attr::Graphs(gs) => gs.iter_mut().collect(),
            _ => vec![],
        }
    }
}

/// A Rust type that a typed op uses for an attribute field.
pub trait AttrValue: Sized {
    /// The attribute for this value.
    fn to_attr(&self) -> Attr;
    /// The value of an attribute, when it has the right kind.
    fn from_attr(a: Attr) -> Option<Self>;
}

impl AttrValue for i64 {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self)
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Int(i) => Some(i),
            _ => None,
        }
    }
}
impl AttrValue for f32 {
    fn to_attr(&self) -> Attr {
        Attr::Float(*self)
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Float(f) => Some(f),
            // Some exporters write whole-number floats as ints.
            Attr::Int(i) => Some(i as f32),
            _ => None,
        }
    }
}
impl AttrValue for bool {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self as i64)
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Int(i) => Some(i != 0),
            _ => None,
        }
    }
}
impl AttrValue for String {
    fn to_attr(&self) -> Attr {
        Attr::Str(self.as_bytes().to_vec())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Str(s) => String::from_utf8(s).ok(),
            _ => None,
        }
    }
}
impl AttrValue for Vec<i64> {
    fn to_attr(&self) -> Attr {
        Attr::Ints(self.clone())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Ints(v) => Some(v),
            _ => None,
        }
    }
}
impl AttrValue for Vec<f32> {
    fn to_attr(&self) -> Attr {
        Attr::Floats(self.clone())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Floats(v) => Some(v),
            _ => None,
        }
    }
}
impl AttrValue for Vec<String> {
    fn to_attr(&self) -> Attr {
        Attr::Strs(self.iter().map(|s| s.as_bytes().to_vec()).collect())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Strs(v) => v.into_iter().map(|s| String::from_utf8(s).ok()).collect(),
            _ => None,
        }
    }
}
impl AttrValue for DType {
    fn to_attr(&self) -> Attr {
        Attr::DType(*self)
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::DType(d) => Some(d),
            Attr::Int(i) => i32::try_from(i).ok().and_then(DType::from_code),
            _ => None,
        }
    }
}
impl AttrValue for Tensor {
    fn to_attr(&self) -> Attr {
        Attr::Tensor(self.clone())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Tensor(t) => Some(t),
            _ => None,
        }
    }
}
impl AttrValue for Box<Graph> {
    fn to_attr(&self) -> Attr {
        Attr::Graph(self.clone())
    }
    fn from_attr(a: Attr) -> Option<Self> {
        match a {
            Attr::Graph(g) => Some(g),
            _ => None,
        }
    }
}
impl<T: AttrValue> AttrValue for Option<T> {
    fn to_attr(&self) -> Attr {
        match self {
            Some(v) => v.to_attr(),
            // Never written: optional attributes that are absent are skipped by the op macro.
            None => Attr::Ints(vec![]),
        }
    }
    fn from_attr(a: Attr) -> Option<Self> {
        T::from_attr(a).map(Some)
    }
}
