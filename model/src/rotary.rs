//! Rotary position embedding as Hugging Face's GPT-NeoX and Llama apply it: the first `rot`
//! dimensions of each head split into two halves, rotated together by position-dependent
//! angles θ_i = p · base^(−2i/rot); the remaining dimensions pass unchanged (GPT-NeoX's
//! partial rotary).

use burn::prelude::*;
use burn::tensor::TensorData;

/// Rotates queries or keys at absolute positions `start..start + T`.
///
/// # Shapes
/// - x: `[B, heads, T, head_dim]` → the same
pub fn apply_rotary(x: Tensor<4>, start: usize, rot: usize, base: f64) -> Tensor<4> {
    let [_, _, t, hs] = x.dims();
    if rot == 0 {
        return x;
    }
    let half = rot / 2;
    let (mut cos, mut sin) = (Vec::with_capacity(t * half), Vec::with_capacity(t * half));
    for p in start..start + t {
        for i in 0..half {
            let angle = p as f64 / base.powf(2.0 * i as f64 / rot as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let device = x.device();
    let table = |v: Vec<f32>| {
        Tensor::<2>::from_data(TensorData::new(v, [t, half]), &device).reshape([1, 1, t, half])
    };
    let (cos, sin) = (table(cos), table(sin));
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.clone().narrow(3, half, half);
    let mut parts = vec![
        x1.clone() * cos.clone() - x2.clone() * sin.clone(),
        x2 * cos + x1 * sin,
    ];
    if rot < hs {
        parts.push(x.narrow(3, rot, hs - rot));
    }
    Tensor::cat(parts, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_the_two_halves_of_the_rotary_dimensions_and_passes_the_rest() {
        let device = Device::flex();
        // One head of 6 dimensions, 4 rotated; position 3 (start 2, second token).
        let values: Vec<f32> = (0..12).map(|i| i as f32 + 1.0).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, 1, 2, 6]), &device);
        let y = apply_rotary(x, 2, 4, 100.0)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let row = &values[6..12];
        for i in 0..2 {
            let angle = 3.0f64 / 100f64.powf(2.0 * i as f64 / 4.0);
            let (c, s) = (angle.cos() as f32, angle.sin() as f32);
            let (a, b) = (row[i], row[i + 2]);
            assert!((y[6 + i] - (a * c - b * s)).abs() < 1e-5);
            assert!((y[6 + i + 2] - (b * c + a * s)).abs() < 1e-5);
        }
        assert_eq!(&y[10..12], &row[4..6]);
    }
}
