//! A generated run directory (`tokens`, `activations`, `neurons`) of any size, for the
//! analysis benchmarks and for tests that compare query engines on the same lake.

use crate::Result;
use crate::parquet_io::{AtomicParquet, write_parquet};
use crate::tables::activations::{self, ActivationRow};
use crate::tables::neurons::{self, NeuronRow};
use crate::tables::tokens::{self, TokenRow};
use std::path::Path;

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
        tokens::schema(),
        &[tokens::encode(&token_rows(&ids))?],
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
                    activations::schema(),
                    &[],
                )?;
                for chunk in rows.chunks(1 << 20) {
                    file.write(&activations::encode(chunk, model == "dense", false)?)?;
                }
                file.finish()?;
                write_parquet(
                    &run.join("record/neurons").join(&partition),
                    neurons::schema(),
                    &[neurons::encode(&neuron_rows(spec.d))?],
                    &[],
                )?;
            }
        }
    }
    Ok(written)
}

/// One partition's (neuron, token, value) rows, sorted by neuron then token as `record`
/// writes them.
fn activation_rows(spec: &LakeSpec, ids: &[u32], rng: &mut SplitMix64) -> Vec<ActivationRow> {
    let mut rows = Vec::with_capacity(ids.len() * spec.k);
    for (t, &id) in ids.iter().enumerate() {
        for j in 0..spec.k {
            let neuron = if j < spec.k / 2 {
                (id as usize * 7 + j) % spec.d
            } else {
                rng.below(spec.d)
            };
            let value = 1.0 + rng.below(1000) as f32 / 500.0;
            rows.push(ActivationRow {
                neuron: neuron as u16,
                token_index: t as u32,
                value,
            });
        }
    }
    rows.sort_unstable_by_key(ActivationRow::key);
    rows.dedup_by_key(|r| r.key());
    rows
}

fn token_rows(ids: &[u32]) -> Vec<TokenRow> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            let i = i as u32;
            let concept = (id % 5 != 0).then_some((id % 40) as u16 + 1);
            let name = concept.map(|c| format!("concept.{c}"));
            TokenRow {
                token_index: i,
                doc_id: i / 64,
                position: i % 64,
                token_id: id,
                token_text: format!("t{id}"),
                word_index: i,
                word: name.clone(),
                concept: name,
                concept_id: concept,
            }
        })
        .collect()
}

fn neuron_rows(d: usize) -> Vec<NeuronRow> {
    (0..d as u16)
        .map(|neuron| NeuronRow {
            neuron,
            read_norm: 1.0,
            write_norm: 1.0,
            top_promoted: String::new(),
            top_suppressed: String::new(),
            read_cos_prev: None,
            write_cos_prev: None,
        })
        .collect()
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
