//! The portable generator behind `const f32[4,4] random(seed=3)`: the same text gives the same
//! tensor, byte for byte, on every platform and in every release (docs/ir.md states it too).
//!
//! The algorithm, which is part of the text form's stability promise:
//!
//! 1. A SplitMix64 stream starts at `state = seed`. Each draw does
//!    `state += 0x9E3779B97F4A7C15; z = state;`
//!    `z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;`
//!    and returns `z ^ (z >> 31)` (all arithmetic wrapping, on u64).
//! 2. Elements are filled in row-major order, one draw `x` each:
//!    - float types with `p` significand bits (f64: 53, f32: 24, f16: 11, bf16: 8):
//!      `k = x >> (64 - p)`, value `(k - 2^(p-1)) / 2^(p-1)`: a multiple of `2^-(p-1)` in
//!      [-1, 1), exactly representable, so no rounding is involved;
//!    - signed integer types (i8, i16, i32, i64, i4): `(x >> 60) - 8`, in [-8, 7];
//!    - unsigned integer types (u8, u16, u32, u64, u4): `x >> 60`, in [0, 15];
//!    - bool: `x >> 63`.
//!
//! Other dtypes (strings, complex, 8-bit floats, 2-bit ints) have no random form.

use crate::{DType, Tensor, TensorError};

/// Most elements a `random(…)` constant may have (2^28): a typo in a shape should fail, not
/// allocate the machine's memory.
pub const MAX_RANDOM_ELEMENTS: usize = 1 << 28;

/// Errors from [`random_tensor`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RandomError {
    /// The dtype has no random form.
    #[error("random() does not support dtype {0}")]
    Unsupported(DType),
    /// More than [`MAX_RANDOM_ELEMENTS`] elements.
    #[error("random() is limited to {MAX_RANDOM_ELEMENTS} elements, the shape asks for more")]
    TooLarge,
    /// The dims and data do not make a tensor.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// The SplitMix64 generator (Steele, Lea and Flood; Vigna's reference constants).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A stream starting at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The tensor `random(seed=seed)` stands for, of the given dtype and dims.
pub fn random_tensor(dtype: DType, dims: &[usize], seed: u64) -> Result<Tensor, RandomError> {
    use DType::*;
    let n = crate::tensor::element_count(dims)
        .filter(|n| *n <= MAX_RANDOM_ELEMENTS)
        .ok_or(RandomError::TooLarge)?;
    let mut rng = SplitMix64::new(seed);
    let precision = match dtype {
        F64 => Some(53),
        F32 => Some(24),
        F16 => Some(11),
        BF16 => Some(8),
        _ => None,
    };
    if let Some(p) = precision {
        let half = (1u64 << (p - 1)) as f64;
        let values: Vec<f64> = (0..n)
            .map(|_| ((rng.next_u64() >> (64 - p)) as f64 - half) / half)
            .collect();
        return Ok(Tensor::from_f64s(dtype, dims.to_vec(), &values)?);
    }
    let draw: fn(u64) -> i64 = match dtype {
        I8 | I16 | I32 | I64 | I4 => |x| (x >> 60) as i64 - 8,
        U8 | U16 | U32 | U64 | U4 => |x| (x >> 60) as i64,
        Bool => |x| (x >> 63) as i64,
        _ => return Err(RandomError::Unsupported(dtype)),
    };
    let values: Vec<i64> = (0..n).map(|_| draw(rng.next_u64())).collect();
    Ok(Tensor::from_i64s(dtype, dims.to_vec(), &values)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // Vigna's splitmix64.c, seed 0.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(r.next_u64(), 0x06c4_5d18_8009_454f);
        assert_eq!(r.next_u64(), 0xf88b_b8a8_724c_81ec);
    }

    #[test]
    fn packed_and_unsupported_dtypes() {
        // i4 packs two per byte: 6, -2, -8 → nibbles 0x6, 0xe, 0x8.
        let t = random_tensor(DType::I4, &[3], 0).unwrap();
        assert_eq!(t.to_i64_vec().unwrap(), vec![6, -2, -8]);
        assert_eq!(t.bytes().unwrap(), &[0xe6, 0x08]);
        assert_eq!(
            random_tensor(DType::String, &[1], 0).unwrap_err(),
            RandomError::Unsupported(DType::String)
        );
        assert_eq!(
            random_tensor(DType::F32, &[usize::MAX, 2], 0).unwrap_err(),
            RandomError::TooLarge
        );
        assert_eq!(random_tensor(DType::F32, &[0, 5], 9).unwrap().len(), 0);
    }
}
