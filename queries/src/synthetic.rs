//! A generated run directory (`tokens`, `activations`, `neurons`) of any size, for the
//! analysis benchmarks and for tests that compare query engines on the same lake.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    BooleanArray, Float32Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
};

use crate::Result;
use crate::parquet_io::{AtomicParquet, write_parquet};
use crate::schema::{activations_schema, neurons_schema, tokens_schema};

/// Shape of a generated lake.
#[derive(Debug, Clone)]
pub struct LakeSpec {
    /// Activation rows wanted in all (rounded down to whole tokens).
    pub rows: usize,
    /// Active neurons per token.
    pub k: usize,
    /// Neurons per layer.
    pub d: usize,
    pub layers: usize,
    pub steps: usize,
    pub models: Vec<String>,
    pub seed: u64,
}

impl LakeSpec {
    /// Two models (`topk`, `dense`) × 8 checkpoints × 4 layers × k = 32 of 256 neurons.
    pub fn with_rows(rows: usize) -> Self {
        Self {
            rows,
            k: 32,
            d: 256,
            layers: 4,
            steps: 8,
            models: vec!["topk".into(), "dense".into()],
            seed: 11,
        }
    }

    /// Evaluation tokens, so that rows ≈ models × steps × layers × tokens × k.
    pub fn tokens(&self) -> usize {
        (self.rows / (self.k * self.layers * self.steps * self.models.len())).max(1)
    }
}

/// Writes `prepare/tokens.parquet`, `record/activations/` and `record/neurons/` (Hive
/// partitions `model=/step=/layer=`) under `run`. Tokens come from a skewed vocabulary of
/// about 4096 ids with 40 concepts; each token prefers k/2 neurons tied to its id and draws the
/// rest at random, so neurons specialise and entropies are not trivial. Returns the rows
/// written to `activations`.
pub fn write_lake(run: &Path, spec: &LakeSpec) -> Result<usize> {
    let tokens = spec.tokens();
    let mut rng = SplitMix64(spec.seed);
    let ids: Vec<u32> = (0..tokens)
        .map(|_| (rng.below(64) * rng.below(64)) as u32)
        .collect();
    write_parquet(
        &run.join("prepare/tokens.parquet"),
        tokens_schema(),
        &[tokens_batch(&ids)?],
        &[],
    )?;
    let mut written = 0;
    for model in &spec.models {
        for step in 0..spec.steps {
            for layer in 0..spec.layers {
                let partition =
                    format!("model={model}/step={step}/layer={layer}/part-0000.parquet");
                let rows = activation_rows(spec, &ids, &mut rng);
                written += rows.len();
                let mut file = AtomicParquet::create(
                    &run.join("record/activations").join(&partition),
                    activations_schema(),
                    &[],
                )?;
                for chunk in rows.chunks(1 << 20) {
                    file.write(&activations_batch(chunk, model == "dense")?)?;
                }
                file.finish()?;
                write_parquet(
                    &run.join("record/neurons").join(&partition),
                    neurons_schema(),
                    &[neurons_batch(spec.d)?],
                    &[],
                )?;
            }
        }
    }
    Ok(written)
}

/// One partition's (neuron, token, value) rows, sorted by neuron then token as `record`
/// writes them.
fn activation_rows(spec: &LakeSpec, ids: &[u32], rng: &mut SplitMix64) -> Vec<(u16, u32, f32)> {
    let mut rows = Vec::with_capacity(ids.len() * spec.k);
    for (t, &id) in ids.iter().enumerate() {
        for j in 0..spec.k {
            let neuron = if j < spec.k / 2 {
                (id as usize * 7 + j) % spec.d
            } else {
                rng.below(spec.d)
            };
            let value = 1.0 + rng.below(1000) as f32 / 500.0;
            rows.push((neuron as u16, t as u32, value));
        }
    }
    rows.sort_unstable_by_key(|r| (r.0, r.1));
    rows.dedup_by_key(|r| (r.0, r.1));
    rows
}

fn tokens_batch(ids: &[u32]) -> Result<RecordBatch> {
    let n = ids.len() as u32;
    let concept: Vec<Option<u16>> = ids
        .iter()
        .map(|&t| (t % 5 != 0).then_some((t % 40) as u16 + 1))
        .collect();
    let names: Vec<Option<String>> = concept
        .iter()
        .map(|c| c.map(|c| format!("concept.{c}")))
        .collect();
    Ok(RecordBatch::try_new(
        tokens_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(0..n)),
            Arc::new(UInt32Array::from_iter_values((0..n).map(|i| i / 64))),
            Arc::new(UInt32Array::from_iter_values((0..n).map(|i| i % 64))),
            Arc::new(UInt32Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(
                ids.iter().map(|i| format!("t{i}")),
            )),
            Arc::new(UInt32Array::from_iter_values(0..n)),
            Arc::new(StringArray::from(names.clone())),
            Arc::new(StringArray::from(names)),
            Arc::new(UInt16Array::from(concept)),
        ],
    )?)
}

fn activations_batch(rows: &[(u16, u32, f32)], dense: bool) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        activations_schema(),
        vec![
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(BooleanArray::from(vec![dense; rows.len()])),
        ],
    )?)
}

fn neurons_batch(d: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        neurons_schema(),
        vec![
            Arc::new(UInt16Array::from_iter_values(0..d as u16)),
            Arc::new(Float32Array::from(vec![1.0; d])),
            Arc::new(Float32Array::from(vec![1.0; d])),
            Arc::new(StringArray::from(vec![""; d])),
            Arc::new(StringArray::from(vec![""; d])),
            Arc::new(Float32Array::from(vec![None; d])),
            Arc::new(Float32Array::from(vec![None; d])),
        ],
    )?)
}

/// SplitMix64: a few lines of seeded randomness, so this crate needs no RNG dependency.
struct SplitMix64(u64);

impl SplitMix64 {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z as u128 * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lake_has_the_rows_and_partitions_its_spec_asks_for() {
        let dir = tempfile::tempdir().unwrap();
        let spec = LakeSpec {
            rows: 4 * 2 * 3 * 2 * 10,
            k: 4,
            d: 16,
            layers: 2,
            steps: 3,
            models: vec!["a".into(), "b".into()],
            seed: 1,
        };
        assert_eq!(spec.tokens(), 10);
        let rows = write_lake(dir.path(), &spec).unwrap();
        // Duplicates (a random neuron equal to a preferred one) are dropped, never added.
        assert!(rows <= spec.rows && rows >= spec.rows * 3 / 4, "{rows}");
        let parts = std::fs::read_dir(dir.path().join("record/activations/model=b/step=2"))
            .unwrap()
            .count();
        assert_eq!(parts, 2);
        assert!(dir.path().join("prepare/tokens.parquet").is_file());
    }
}
