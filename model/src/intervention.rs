//! Edits to one neuron of one block output, applied at inference between blocks.
//!
//! An intervention acts on the block output *after* TopK, so what it writes is exactly what
//! the next block reads: a `set` on a neuron outside the kept k makes it active (k + 1 entries
//! at that position); `set` to 0 on a kept neuron removes it. Recording never intervenes, so
//! recorded activations are the model's own.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How the intervention changes the neuron's activation `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InterventionMode {
    /// `a ← value`
    #[default]
    Set,
    /// `a ← a + value`
    Add,
    /// `a ← a · value`
    Scale,
}

/// One single-neuron edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intervention {
    /// Block whose output is edited (0-based).
    pub layer: usize,
    /// Residual-stream coordinate.
    pub neuron: usize,
    /// How to apply `value`.
    pub mode: InterventionMode,
    /// Strength.
    pub value: f32,
    /// Only positions at or after this absolute position are edited (0: all).
    pub from_position: usize,
    /// Positions from this one on are left alone (`None`: no end), e.g. the prompt's length
    /// to edit the prompt only.
    pub until_position: Option<usize>,
}

impl Intervention {
    /// Applies the edit to a block output.
    ///
    /// # Shapes
    /// - x: `[B, T, d_model]` covering absolute positions `start..start + T`
    pub fn apply(&self, x: Tensor<3>, start: usize) -> Tensor<3> {
        let [b, t, d] = x.dims();
        assert!(
            self.neuron < d,
            "neuron {} out of range (d_model = {d})",
            self.neuron
        );
        let first = self.from_position.saturating_sub(start).min(t);
        let end = self
            .until_position
            .map_or(t, |u| u.saturating_sub(start).min(t));
        if first >= end {
            return x;
        }
        let ranges = [0..b, first..end, self.neuron..self.neuron + 1];
        let current = x.clone().slice(ranges.clone());
        let edited = match self.mode {
            InterventionMode::Set => current.zeros_like().add_scalar(self.value),
            InterventionMode::Add => current.add_scalar(self.value),
            InterventionMode::Scale => current.mul_scalar(self.value),
        };
        x.slice_assign(ranges, edited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_only_the_positions_in_range_with_each_mode() {
        let device = Device::flex();
        let x = Tensor::<3>::ones([1, 5, 3], &device);
        let edit = |mode, value| Intervention {
            layer: 0,
            neuron: 1,
            mode,
            value,
            from_position: 11,
            until_position: Some(13),
        };
        // The tensor covers absolute positions 10..15: positions 11 and 12 are edited.
        for (mode, value, expected) in [
            (InterventionMode::Set, 4.0, 4.0),
            (InterventionMode::Add, 4.0, 5.0),
            (InterventionMode::Scale, 4.0, 4.0),
        ] {
            let y = edit(mode, value)
                .apply(x.clone(), 10)
                .into_data()
                .try_into_vec::<f32>()
                .unwrap();
            for (i, v) in y.iter().enumerate() {
                let (pos, neuron) = (10 + i / 3, i % 3);
                let want = if neuron == 1 && (11..13).contains(&pos) {
                    expected
                } else {
                    1.0
                };
                assert_eq!(*v, want, "{mode:?} position {pos} neuron {neuron}");
            }
        }
    }
}
