//! Fixtures shared by the integration tests.

use model::GptConfig;

/// A model small enough to train in a fraction of a second: 2 blocks (1 TopK, k = 8 of 32).
pub fn tiny() -> GptConfig {
    GptConfig {
        block_size: 8,
        n_layers: 2,
        ..GptConfig::micro(16)
    }
}

/// A repeating sequence the model can learn exactly.
pub fn pattern(n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| [3, 1, 4, 1, 5, 9, 2, 6, 5, 3][i % 10])
        .collect()
}
