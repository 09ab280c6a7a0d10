//! Element types of tensors.
//!
//! The numbering of [`DType::code`] is ONNX's `TensorProto.DataType`: it is a stable, well-known
//! numbering, and using it keeps the ONNX front end a table lookup. Nothing else in this crate
//! depends on ONNX.

use std::fmt;

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32,
    U8,
    I8,
    U16,
    I16,
    I32,
    I64,
    String,
    Bool,
    F16,
    F64,
    U32,
    U64,
    C64,
    C128,
    BF16,
    F8E4M3FN,
    F8E4M3FNUZ,
    F8E5M2,
    F8E5M2FNUZ,
    U4,
    I4,
    F4E2M1,
    F8E8M0,
    U2,
    I2,
}

const ALL: [DType; 26] = [
    DType::F32,
    DType::U8,
    DType::I8,
    DType::U16,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::String,
    DType::Bool,
    DType::F16,
    DType::F64,
    DType::U32,
    DType::U64,
    DType::C64,
    DType::C128,
    DType::BF16,
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::U4,
    DType::I4,
    DType::F4E2M1,
    DType::F8E8M0,
    DType::U2,
    DType::I2,
];

impl DType {
    /// Every element type, in code order.
    pub fn all() -> &'static [DType] {
        &ALL
    }

    /// The ONNX `TensorProto.DataType` number of this type.
    pub fn code(self) -> i32 {
        // ALL is in code order starting at 1.
        ALL.iter()
            .position(|d| *d == self)
            .map(|p| p as i32 + 1)
            .unwrap_or(0)
    }

    /// The type with the given ONNX `TensorProto.DataType` number.
    pub fn from_code(code: i32) -> Option<DType> {
        if code >= 1 && (code as usize) <= ALL.len() {
            Some(ALL[code as usize - 1])
        } else {
            None
        }
    }

    /// Size of one element in bits (strings report 0: they have no fixed size).
    pub fn bits(self) -> usize {
        use DType::*;
        match self {
            Bool | U8 | I8 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 => 8,
            U16 | I16 | F16 | BF16 => 16,
            F32 | I32 | U32 => 32,
            F64 | I64 | U64 | C64 => 64,
            C128 => 128,
            U4 | I4 | F4E2M1 => 4,
            U2 | I2 => 2,
            String => 0,
        }
    }

    /// Bytes needed to store `n` elements densely (sub-byte types packed, rounded up).
    pub fn bytes_for(self, n: usize) -> Option<usize> {
        n.checked_mul(self.bits()).map(|b| b.div_ceil(8))
    }

    /// True for floating-point types (including the 8- and 4-bit float formats).
    pub fn is_float(self) -> bool {
        use DType::*;
        matches!(
            self,
            F32 | F16 | BF16 | F64 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1 | F8E8M0
        )
    }

    /// True for integer types (bool excluded).
    pub fn is_int(self) -> bool {
        use DType::*;
        matches!(
            self,
            U8 | I8 | U16 | I16 | I32 | I64 | U32 | U64 | U4 | I4 | U2 | I2
        )
    }

    /// True for signed integer types.
    pub fn is_signed_int(self) -> bool {
        use DType::*;
        matches!(self, I8 | I16 | I32 | I64 | I4 | I2)
    }

    /// The short name used in the text form (`f32`, `i64`, `bool`, …).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "f32",
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            String => "string",
            Bool => "bool",
            F16 => "f16",
            F64 => "f64",
            U32 => "u32",
            U64 => "u64",
            C64 => "c64",
            C128 => "c128",
            BF16 => "bf16",
            F8E4M3FN => "f8e4m3fn",
            F8E4M3FNUZ => "f8e4m3fnuz",
            F8E5M2 => "f8e5m2",
            F8E5M2FNUZ => "f8e5m2fnuz",
            U4 => "u4",
            I4 => "i4",
            F4E2M1 => "f4e2m1",
            F8E8M0 => "f8e8m0",
            U2 => "u2",
            I2 => "i2",
        }
    }

    /// The value of an 8-bit float's code (`F8E4M3FN`, `F8E4M3FNUZ`, `F8E5M2`, `F8E5M2FNUZ`),
    /// per ONNX's float8 definitions: E4M3FN has no infinities (S.1111.111 is NaN, 448 the
    /// largest), E5M2 is IEEE-like (infinities and NaNs at exponent 31), the FNUZ forms have a
    /// bias one larger, no infinities, no negative zero, and 0x80 as their only NaN. `None`
    /// for other dtypes.
    pub fn f8_value(self, code: u8) -> Option<f64> {
        let (e_bits, m_bits, bias, fnuz) = match self {
            DType::F8E4M3FN => (4, 3, 7, false),
            DType::F8E4M3FNUZ => (4, 3, 8, true),
            DType::F8E5M2 => (5, 2, 15, false),
            DType::F8E5M2FNUZ => (5, 2, 16, true),
            _ => return None,
        };
        if fnuz && code == 0x80 {
            return Some(f64::NAN);
        }
        let neg = code & 0x80 != 0;
        let e = i32::from((code >> m_bits) & ((1 << e_bits) - 1));
        let m = i32::from(code & ((1 << m_bits) - 1));
        let e_max = (1 << e_bits) - 1;
        let mag = if self == DType::F8E4M3FN && e == e_max && m == (1 << m_bits) - 1 {
            f64::NAN
        } else if self == DType::F8E5M2 && e == e_max {
            if m == 0 {
                f64::INFINITY
            } else {
                f64::NAN
            }
        } else if e == 0 {
            f64::from(m) * 2f64.powi(1 - bias - m_bits)
        } else {
            (1.0 + f64::from(m) / f64::from(1 << m_bits)) * 2f64.powi(e - bias)
        };
        Some(if neg { -mag } else { mag })
    }

    /// Parses a name printed by [`DType::name`].
    pub fn from_name(s: &str) -> Option<DType> {
        ALL.iter().copied().find(|d| d.name() == s)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_onnx_numbering() {
        assert_eq!(DType::F32.code(), 1);
        assert_eq!(DType::I64.code(), 7);
        assert_eq!(DType::Bool.code(), 9);
        assert_eq!(DType::BF16.code(), 16);
        assert_eq!(DType::I4.code(), 22);
        assert_eq!(DType::from_code(10), Some(DType::F16));
        assert_eq!(DType::from_code(0), None);
        assert_eq!(DType::from_code(99), None);
        for d in DType::all() {
            assert_eq!(DType::from_name(d.name()), Some(*d));
        }
    }

    #[test]
    fn float8_codes_decode_per_onnx() {
        // Largest finite values and NaN codes from ONNX's Float8 table.
        assert_eq!(DType::F8E4M3FN.f8_value(0x7e), Some(448.0));
        assert!(DType::F8E4M3FN.f8_value(0x7f).unwrap().is_nan());
        assert_eq!(DType::F8E4M3FNUZ.f8_value(0x7f), Some(240.0));
        assert!(DType::F8E4M3FNUZ.f8_value(0x80).unwrap().is_nan());
        assert_eq!(DType::F8E5M2.f8_value(0x7b), Some(57344.0));
        assert_eq!(DType::F8E5M2.f8_value(0x7c), Some(f64::INFINITY));
        assert_eq!(DType::F8E5M2.f8_value(0xfc), Some(f64::NEG_INFINITY));
        assert_eq!(DType::F8E5M2FNUZ.f8_value(0x7f), Some(57344.0));
        // Smallest subnormals: 2^-9, 2^-10, 2^-16, 2^-17.
        assert_eq!(DType::F8E4M3FN.f8_value(0x01), Some(2f64.powi(-9)));
        assert_eq!(DType::F8E4M3FNUZ.f8_value(0x01), Some(2f64.powi(-10)));
        assert_eq!(DType::F8E5M2.f8_value(0x01), Some(2f64.powi(-16)));
        assert_eq!(DType::F8E5M2FNUZ.f8_value(0x01), Some(2f64.powi(-17)));
        assert_eq!(DType::F8E4M3FN.f8_value(0x38), Some(1.0));
        assert_eq!(DType::F8E4M3FN.f8_value(0xb8), Some(-1.0));
        assert_eq!(DType::F32.f8_value(0), None);
    }
}
