//! Comparing outputs: max abs/rel error and the numpy `allclose` rule.

use smelt_ir::Tensor;

/// `|a - b| <= atol + rtol * |b|`, element by element (numpy's `allclose`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Tolerance {
    /// The exact passes' tolerance (DESIGN.md): rtol 1e-4, atol 1e-5.
    pub const EXACT: Tolerance = Tolerance {
        rtol: 1e-4,
        atol: 1e-5,
    };
    /// The ONNX node-test suite's tolerance: rtol 1e-3, atol 1e-7.
    pub const ONNX_SUITE: Tolerance = Tolerance {
        rtol: 1e-3,
        atol: 1e-7,
    };
}

/// How far an output is from its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Largest relative difference (`|a-b| / |b|`, over elements with `b != 0`).
    pub max_rel: f64,
    /// Elements outside the tolerance.
    pub mismatches: usize,
    /// Elements compared.
    pub count: usize,
    /// A reason the tensors cannot be compared at all (dtype or shape), if any.
    pub incompatible: Option<String>,
}

impl Comparison {
    /// True when the outputs agree.
    pub fn ok(&self) -> bool {
        self.incompatible.is_none() && self.mismatches == 0
    }
}

/// Compares `actual` with `expected`. Integers and bools must be equal; NaN equals NaN.
pub fn compare(actual: &Tensor, expected: &Tensor, tol: Tolerance) -> Comparison {
    let mut c = Comparison {
        max_abs: 0.0,
        max_rel: 0.0,
        mismatches: 0,
        count: 0,
        incompatible: None,
    };
    if actual.dims() != expected.dims() {
        c.incompatible = Some(format!(
            "shape {:?} vs expected {:?}",
            actual.dims(),
            expected.dims()
        ));
        return c;
    }
    if actual.dtype() != expected.dtype() {
        c.incompatible = Some(format!(
            "dtype {} vs expected {}",
            actual.dtype(),
            expected.dtype()
        ));
        return c;
    }
    if let (Some(a), Some(b)) = (actual.strings(), expected.strings()) {
        c.count = a.len();
        c.mismatches = a.iter().zip(b).filter(|(x, y)| x != y).count();
        return c;
    }
    let exact = !actual.dtype().is_float();
    let (Some(a), Some(b)) = (actual.to_f64_vec(), expected.to_f64_vec()) else {
        let same = actual.bytes() == expected.bytes();
        c.count = actual.len();
        c.mismatches = usize::from(!same);
        return c;
    };
    c.count = a.len();
    for (x, y) in a.iter().zip(&b) {
        // Equal values (infinities of the same sign included) and NaN against NaN agree.
        if x == y || (x.is_nan() && y.is_nan()) {
            continue;
        }
        let d = (x - y).abs();
        // Unequal values where either is NaN or infinite never agree (a tolerance scaled by
        // an infinite expected value would accept anything).
        if d.is_nan() || !x.is_finite() || !y.is_finite() {
            c.mismatches += 1;
            c.max_abs = f64::INFINITY;
            continue;
        }
        c.max_abs = c.max_abs.max(d);
        if *y != 0.0 {
            c.max_rel = c.max_rel.max(d / y.abs());
        }
        let bad = if exact {
            d != 0.0
        } else {
            d > tol.atol + tol.rtol * y.abs()
        };
        if bad {
            c.mismatches += 1;
        }
    }
    c
}

/// Compares two output lists position by position.
pub fn compare_all(actual: &[Tensor], expected: &[Tensor], tol: Tolerance) -> Vec<Comparison> {
    if actual.len() != expected.len() {
        return vec![Comparison {
            max_abs: 0.0,
            max_rel: 0.0,
            mismatches: 0,
            count: 0,
            incompatible: Some(format!(
                "{} outputs vs {} expected",
                actual.len(),
                expected.len()
            )),
        }];
    }
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| compare(a, e, tol))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allclose_rule_and_integer_exactness() {
        let a = Tensor::from_vec(vec![3], &[1.0f32, 2.0, 100.0]).unwrap();
        let b = Tensor::from_vec(vec![3], &[1.0f32, 2.00001, 100.02]).unwrap();
        let c = compare(&a, &b, Tolerance::EXACT);
        // |2 - 2.00001| = 1e-5 <= 1e-5 + 2e-4; |100 - 100.02| = 0.02 > 1e-5 + 1e-2.
        assert_eq!(c.mismatches, 1);
        assert!((c.max_abs - 0.02).abs() < 1e-4);
        let i = Tensor::from_vec(vec![2], &[1i64, 2]).unwrap();
        let j = Tensor::from_vec(vec![2], &[1i64, 3]).unwrap();
        assert_eq!(
            compare(
                &i,
                &j,
                Tolerance {
                    rtol: 1.0,
                    atol: 1.0
                }
            )
            .mismatches,
            1
        );
    }

    #[test]
    fn equal_infinities_agree_and_opposite_ones_do_not() {
        let a =
            Tensor::from_vec(vec![4], &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0]).unwrap();
        let b = Tensor::from_vec(vec![4], &[f32::INFINITY, f32::INFINITY, f32::NAN, 1.0]).unwrap();
        let c = compare(&a, &b, Tolerance::EXACT);
        assert_eq!(c.mismatches, 1);
        assert_eq!(compare(&a, &a, Tolerance::EXACT).mismatches, 0);
    }
}
