//! Seeded random inputs for `smelt verify --random N --seed S`.

use smelt_ir::{DType, Tensor};

/// SplitMix64: tiny, portable, and good enough to pick test inputs.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A uniform float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random tensors for the given (dtype, dims): floats uniform in [0, 1) (the range models'
/// normalised inputs have), integers in [0, 10), bools fair.
pub fn random_inputs(specs: &[(DType, Vec<usize>)], seed: u64) -> Result<Vec<Tensor>, String> {
    let mut rng = SplitMix64(seed);
    specs
        .iter()
        .map(|(dt, dims)| {
            let n: usize = dims.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    if dt.is_float() {
                        rng.next_f64()
                    } else if *dt == DType::Bool {
                        (rng.next_u64() & 1) as f64
                    } else {
                        (rng.next_u64() % 10) as f64
                    }
                })
                .collect();
            Tensor::from_f64s(*dt, dims.clone(), &v).map_err(|e| e.to_string())
        })
        .collect()
}
