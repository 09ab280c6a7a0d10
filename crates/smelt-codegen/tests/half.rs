//! Half-float Casts (f16, bf16 ↔ f32) against the `half` crate: every one of the 65,536 f16
//! and bf16 bit patterns widened, and f32 values around every rounding boundary narrowed.

mod common;
use common::*;
use smelt_ir::ops;
use smelt_ir::{DType, Op, Tensor};

fn cast(x: Tensor, to: DType) -> Tensor {
    let mut b = G::new();
    let xi = b.input("x", x.dtype(), x.dims());
    let y = b.node(Op::Cast(ops::Cast { saturate: 1, to }), &[xi]);
    let g = b.finish(&[y]);
    run(&g, &[x]).remove(0)
}

fn u16s(t: &Tensor) -> Vec<u16> {
    t.bytes()
        .unwrap()
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn all_patterns(dtype: DType) -> Tensor {
    let bytes: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
    Tensor::from_bytes(dtype, vec![65536], bytes).unwrap()
}

/// Bitwise equality, any NaN matching any NaN.
fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_f16_and_bf16_pattern_widens_exactly() {
    let got = f32s(&cast(all_patterns(DType::F16), DType::F32));
    for (h, g) in (0..=u16::MAX).zip(&got) {
        let want = half::f16::from_bits(h).to_f32();
        assert!(
            same(*g, want),
            "f16 {h:#06x}: {g} ({:#x}) vs {want}",
            g.to_bits()
        );
    }
    let got = f32s(&cast(all_patterns(DType::BF16), DType::F32));
    for (h, g) in (0..=u16::MAX).zip(&got) {
        let want = half::bf16::from_bits(h).to_f32();
        assert!(same(*g, want), "bf16 {h:#06x}: {g} vs {want}");
    }
}

#[test]
fn f32_narrows_to_nearest_even_half() {
    // Every f16 value, the midpoints to its neighbours, one ulp either side of those, and the
    // specials: the rounding boundaries, subnormals, overflow and NaN.
    let mut x: Vec<f32> = vec![
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        65504.0,
        65519.0,
        65520.0,
        1e10,
        -1e-10,
        1e-8,
        5.96e-8,
        2.98e-8,
        2.99e-8,
        f32::MIN_POSITIVE,
    ];
    for h in 0..0x7c00u16 {
        let a = half::f16::from_bits(h).to_f32();
        let b = half::f16::from_bits(h + 1).to_f32();
        let mid = (a + b) / 2.0;
        for v in [
            a,
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ] {
            x.push(v);
            x.push(-v);
        }
    }
    let n = x.len();
    let got = u16s(&cast(t32(&[n], &x), DType::F16));
    for (v, g) in x.iter().zip(&got) {
        let want = half::f16::from_f32(*v);
        let ok = *g == want.to_bits() || (v.is_nan() && half::f16::from_bits(*g).is_nan());
        assert!(ok, "{v:e}: {g:#06x} vs {:#06x}", want.to_bits());
    }
    let got = u16s(&cast(t32(&[n], &x), DType::BF16));
    for (v, g) in x.iter().zip(&got) {
        let want = half::bf16::from_f32(*v);
        let ok = *g == want.to_bits() || (v.is_nan() && half::bf16::from_bits(*g).is_nan());
        assert!(ok, "{v:e}: bf16 {g:#06x} vs {:#06x}", want.to_bits());
    }
}
