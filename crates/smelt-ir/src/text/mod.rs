//! The text form: stable, diff-friendly, one node a line (docs/ir.md has the grammar).
//!
//! ```text
//! graph digits_mlp(input: f32[1,64]) -> (logits: f32[1,10]) {
//!   %fc1.weight = const f32[128,64] #9f31c2a07b44d610
//!   %h1 = Gemm(%input, %fc1.weight, %fc1.bias) {transB=1} : f32[1,128]
//!   return %logits
//! }
//! ```
//!
//! - [`print`](mod@print): graph → text ([`to_text`], [`model_to_text`]); same graph, same bytes.
//! - [`parse`]: text → graph ([`parse_graph`], [`parse_model`]); it accepts everything the
//!   printer prints, and `to_text(parse(to_text(g))) == to_text(g)` byte for byte.
//! - Constants the printer summarises as `#hash` come back through a [`ConstSource`]:
//!   [`NoConsts`] (every hash is an error), or a [`BlobStore`] read from the blob file that
//!   [`write_blob`] writes ([`blob`] documents the format).
//! - [`random`]: the portable generator behind `const f32[4,4] random(seed=3)`.

pub mod blob;
pub mod parse;
pub mod print;
pub mod random;

pub use blob::{write_blob, BlobError, BlobStore};
pub use parse::{
    parse_graph, parse_model, parse_tensor, parse_type, ConstSource, NoConsts, ParseError,
    DEFAULT_OPSET,
};
pub use print::{
    fmt_elements, fmt_f64, fmt_name, fmt_tensor, fmt_type, is_name_char, model_to_text,
    prints_inline, quote, to_text, INLINE_MAX_ELEMENTS,
};
