//! The recorder: one checkpoint's block outputs (or SAE latents) over the evaluation windows,
//! each layer's top-k entries per token written as a Hive partition
//! (`activations/model=/step=/layer=/part-NNNN.parquet`, sorted by neuron then token) beside
//! the layer's `neurons` rows. A partition is built in a staging folder and renamed into place
//! when complete; its files carry a key of everything the rows depend on, so a current one is
//! kept and a stale one rewritten.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::TensorData;
use model::checkpoint::{Checkpoint, load_weights};
use model::{Gpt, GptConfig};
use queries::parquet_io::{AtomicParquet, read_metadata, write_parquet};
use queries::tables::activations::{self, ActivationRow};
use queries::tables::tokens::TokenRow;
use queries::tables::{SCHEMA_VERSION, neurons};
use tokenizers::Tokenizer;

use super::neurons::{latent_table, neuron_table};
use super::windows::{Window, windows};
use crate::config::ValueType;

/// Folder inside `record/` where partitions are built before they are renamed into place.
pub const STAGING: &str = ".staging";

/// Most activation rows held in memory per layer before a sorted file is flushed (the default
/// of `record.rows_per_file`); bounds the recorder's memory whatever the number of tokens.
pub const ROWS_PER_FILE: usize = 4 * 1024 * 1024;

/// Rows of one partition.
type Rows = Vec<ActivationRow>;

/// Counters the tests read: the recorder's own memory accounting.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RecordStats {
    pub partitions_written: usize,
    pub partitions_kept: usize,
    pub rows_written: usize,
    pub max_rows_buffered: usize,
    pub tokens: usize,
    pub forward_seconds: f64,
    pub write_seconds: f64,
}

impl RecordStats {
    /// Sums counts and times; keeps the largest buffer.
    pub fn merge(&self, other: &Self) -> Self {
        Self {
            partitions_written: self.partitions_written + other.partitions_written,
            partitions_kept: self.partitions_kept + other.partitions_kept,
            rows_written: self.rows_written + other.rows_written,
            max_rows_buffered: self.max_rows_buffered.max(other.max_rows_buffered),
            tokens: self.tokens + other.tokens,
            forward_seconds: self.forward_seconds + other.forward_seconds,
            write_seconds: self.write_seconds + other.write_seconds,
        }
    }
}

/// Records checkpoints into one `record/` folder.
pub struct Recorder {
    pub out: PathBuf,
    pub k: usize,
    pub batch_size: usize,
    pub rows_per_file: usize,
    /// How values are stored.
    pub value_type: ValueType,
    pub run_id: String,
    pub device: Device,
    /// Hash of what the rows depend on besides the checkpoint and the recorder's own settings
    /// (the evaluation tokens, the tokenizer): part of every partition's key.
    pub inputs_key: String,
}

impl Recorder {
    /// A partition's folder, relative to the `record/` folder.
    pub fn partition_rel(table: &str, model: &str, step: usize, layer: usize) -> PathBuf {
        PathBuf::from(format!("{table}/model={model}/step={step}/layer={layer}"))
    }

    fn partition(&self, table: &str, model: &str, step: usize, layer: usize) -> PathBuf {
        self.out
            .join(Self::partition_rel(table, model, step, layer))
    }

    /// Where a partition is built before it is renamed into place: outside the tables' folders,
    /// so a partition is either complete (all its part files) or absent, whatever kills the
    /// process between two part files.
    fn staging(&self, table: &str, model: &str, step: usize, layer: usize) -> PathBuf {
        self.out
            .join(STAGING)
            .join(Self::partition_rel(table, model, step, layer))
    }

    fn value_type(&self) -> &'static str {
        self.value_type.name()
    }

    /// The key a partition's files carry: everything its rows depend on (the checkpoint or the
    /// SAEs, k, the stored value type, the evaluation tokens and tokenizer, the batch size that
    /// shapes the forward pass, the table layout). A partition with another key is stale.
    fn partition_key(&self, features_sha: &str, k: usize) -> String {
        crate::manifest::hash_value(&(
            features_sha,
            k,
            self.value_type(),
            &self.inputs_key,
            self.batch_size,
            SCHEMA_VERSION,
        ))
    }

    /// Whether a partition folder holds files made with this key.
    fn is_current(dir: &Path, key: &str) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        let files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect();
        !files.is_empty()
            && files.iter().all(|f| {
                read_metadata(f).is_ok_and(|m| m.iter().any(|(k, v)| k == "record_key" && v == key))
            })
    }

    /// Moves a complete partition from the staging folder into place, replacing a stale one.
    fn commit_partition(&self, table: &str, model: &str, step: usize, layer: usize) -> Result<()> {
        let (staged, dir) = (
            self.staging(table, model, step, layer),
            self.partition(table, model, step, layer),
        );
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot replace {}", dir.display()))?;
        }
        let parent = dir.parent().expect("a partition has a parent folder");
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        Ok(queries::durable::commit(&staged, &dir)?)
    }

    /// Records one checkpoint's block outputs (all layers), unless every partition is current.
    #[allow(clippy::too_many_arguments)]
    pub fn record_checkpoint(
        &self,
        name: &str,
        cfg: &GptConfig,
        cp: &Checkpoint,
        prev: Option<&Checkpoint>,
        tokens: &[TokenRow],
        tokenizer: &Tokenizer,
        stats: &mut RecordStats,
    ) -> Result<()> {
        self.record_features(
            name,
            cfg,
            cp,
            prev,
            &Features::Blocks,
            tokens,
            tokenizer,
            stats,
        )
    }

    /// Records one checkpoint's features (its block outputs, or SAE latents of them) under
    /// model `name`, unless every partition is already current.
    #[allow(clippy::too_many_arguments)]
    pub fn record_features(
        &self,
        name: &str,
        cfg: &GptConfig,
        cp: &Checkpoint,
        prev: Option<&Checkpoint>,
        features: &Features,
        tokens: &[TokenRow],
        tokenizer: &Tokenizer,
        stats: &mut RecordStats,
    ) -> Result<()> {
        let (layers, sha): (Vec<usize>, String) = match features {
            Features::Blocks => ((0..cfg.n_layers).collect(), cp.meta.sha256.clone()),
            Features::Sae { saes, fingerprint } => (
                saes.iter().map(|(l, _)| *l).collect(),
                format!("{}+sae:{fingerprint}", cp.meta.sha256),
            ),
        };
        let sha = &sha;
        let step = cp.meta.step;
        let k = match features {
            Features::Blocks => self.k,
            Features::Sae { saes, .. } => saes.first().map_or(self.k, |(_, s)| s.k),
        };
        let key = self.partition_key(sha, k);
        let stale: Vec<usize> = layers
            .iter()
            .copied()
            .filter(|&l| {
                ["activations", "neurons"]
                    .iter()
                    .any(|t| !Self::is_current(&self.partition(t, name, step, l), &key))
            })
            .collect();
        stats.partitions_kept += layers.len() - stale.len();
        if stale.is_empty() {
            return Ok(());
        }
        // Each checkpoint runs with the k it was trained at (it differs while k is annealed).
        let model = load_weights(cfg, &cp.dir, &self.device)?.with_topk_k(cp.meta.topk_k);
        // The previous checkpoint's weights give the weight side of lineage (not for SAE
        // latents, whose index carries no identity across checkpoints).
        let prev_model = prev
            .filter(|_| matches!(features, Features::Blocks))
            .map(|p| load_weights(cfg, &p.dir, &self.device).map(|m| m.with_topk_k(p.meta.topk_k)))
            .transpose()?;
        let sae_of = |layer: usize| match features {
            Features::Blocks => None,
            Features::Sae { saes, .. } => saes.iter().find(|(l, _)| *l == layer).map(|(_, s)| s),
        };
        let vocab = tokenizer.get_vocab_size(true);
        let windows = windows(tokens, cfg.block_size);
        if let Some(bad) = windows
            .iter()
            .flat_map(|w| &w.ids)
            .find(|&&id| id as usize >= cfg.vocab_size.min(vocab.max(1)))
        {
            anyhow::bail!(
                "token id {bad} in tokens.parquet is outside the model's vocabulary ({}); the token table comes from a different tokenizer — run `pipeline prepare --force`",
                cfg.vocab_size
            );
        }
        for &layer in &stale {
            for table in ["activations", "neurons"] {
                let dir = self.staging(table, name, step, layer);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("cannot clear {}", dir.display()))?;
                }
            }
        }
        let meta = |layer: usize| -> Vec<(&'static str, String)> {
            vec![
                ("run_id", self.run_id.clone()),
                ("checkpoint_sha256", sha.clone()),
                ("record_key", key.clone()),
                ("model", name.to_owned()),
                ("step", step.to_string()),
                ("layer", layer.to_string()),
                ("k", k.to_string()),
                ("value_type", self.value_type().to_owned()),
            ]
        };
        // Neurons first: cheap, from the weights alone.
        for &layer in &stale {
            let rows = match sae_of(layer) {
                None => neuron_table(&model, prev_model.as_ref(), cfg, layer, tokenizer)?,
                Some(sae) => latent_table(&model, sae, tokenizer)?,
            };
            write_parquet(
                &self
                    .staging("neurons", name, step, layer)
                    .join("part-0000.parquet"),
                neurons::schema(),
                &[neurons::encode(&rows)?],
                &meta(layer),
            )?;
        }
        // SAE latents are sparse by construction; a dense layer is read as its top-k.
        let dense = |layer: usize| sae_of(layer).is_none() && !cfg.is_topk_layer(layer);
        // Activations: stream batches of windows, flush sorted files when a buffer fills.
        let mut buffers: Vec<Rows> = vec![Vec::new(); cfg.n_layers];
        let mut parts = vec![0usize; cfg.n_layers];
        for chunk in windows.chunks(self.batch_size) {
            let started = std::time::Instant::now();
            let per_layer = match features {
                Features::Blocks => self.forward_topk(&model, chunk, cfg)?,
                Features::Sae { saes, .. } => self.forward_sae(&model, chunk, cfg, saes)?,
            };
            stats.forward_seconds += started.elapsed().as_secs_f64();
            stats.tokens += chunk.iter().map(|w| w.ids.len()).sum::<usize>();
            for &layer in &stale {
                buffers[layer].extend_from_slice(&per_layer[layer]);
                stats.max_rows_buffered = stats.max_rows_buffered.max(buffers[layer].len());
                if buffers[layer].len() >= self.rows_per_file {
                    let started = std::time::Instant::now();
                    self.flush(
                        &mut buffers[layer],
                        &mut parts[layer],
                        name,
                        step,
                        layer,
                        dense(layer),
                        &meta(layer),
                        stats,
                    )?;
                    stats.write_seconds += started.elapsed().as_secs_f64();
                }
            }
        }
        for &layer in &stale {
            let started = std::time::Instant::now();
            self.flush(
                &mut buffers[layer],
                &mut parts[layer],
                name,
                step,
                layer,
                dense(layer),
                &meta(layer),
                stats,
            )?;
            for table in ["neurons", "activations"] {
                self.commit_partition(table, name, step, layer)?;
            }
            stats.write_seconds += started.elapsed().as_secs_f64();
            stats.partitions_written += 1;
        }
        Ok(())
    }

    /// The active SAE latents (value, latent) of the block outputs at the SAE layers, as rows
    /// per layer (empty for layers without an SAE).
    pub fn forward_sae(
        &self,
        model: &Gpt,
        chunk: &[Window],
        cfg: &GptConfig,
        saes: &[(usize, model::sae::Sae)],
    ) -> Result<Vec<Rows>> {
        let (x, t) = self.window_batch(chunk);
        let hidden = model.block_outputs(x);
        let mut rows = vec![Rows::new(); cfg.n_layers];
        for (layer, sae) in saes {
            let h = hidden[*layer].clone();
            let [b, _, d] = h.dims();
            let latents = sae.encode(h.reshape([b * t, d]));
            rows[*layer] = entries_to_rows(chunk, t, latents.values, latents.indices)?;
        }
        Ok(rows)
    }

    /// Token ids of a batch of windows, right-padded to the longest: `[B, T]` and T.
    fn window_batch(&self, chunk: &[Window]) -> (Tensor<2, Int>, usize) {
        let t = chunk.iter().map(|w| w.ids.len()).max().unwrap_or(0);
        // Right-padding is harmless: attention is causal, and padded positions are dropped.
        let mut ids = Vec::with_capacity(chunk.len() * t);
        for w in chunk {
            ids.extend(w.ids.iter().map(|&x| x as i64));
            ids.extend(std::iter::repeat_n(0i64, t - w.ids.len()));
        }
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [chunk.len(), t]), &self.device);
        (x, t)
    }

    /// The top-k (value, neuron) of every block output for a batch of windows, as rows per layer.
    pub fn forward_topk(
        &self,
        model: &Gpt,
        chunk: &[Window],
        cfg: &GptConfig,
    ) -> Result<Vec<Rows>> {
        let (x, t) = self.window_batch(chunk);
        let hidden = model.block_outputs(x);
        let k = self.k.min(cfg.d_model);
        let mut rows = Vec::with_capacity(hidden.len());
        for (layer, h) in hidden.into_iter().enumerate() {
            let by_abs = cfg.is_topk_layer(layer) || cfg.topk_by == model::TopKBy::Abs;
            let (values, idx) = model::top_entries(h, k, by_abs); // [B, T, k]
            let [b, t_, _] = values.dims();
            rows.push(entries_to_rows(
                chunk,
                t,
                values.reshape([b * t_, k]),
                idx.reshape([b * t_, k]),
            )?);
        }
        Ok(rows)
    }

    #[allow(clippy::too_many_arguments)]
    fn flush(
        &self,
        rows: &mut Rows,
        part: &mut usize,
        name: &str,
        step: usize,
        layer: usize,
        dense: bool,
        meta: &[(&str, String)],
        stats: &mut RecordStats,
    ) -> Result<()> {
        if rows.is_empty() && *part > 0 {
            return Ok(());
        }
        // Sorted by neuron, then token: a per-neuron query reads few row groups.
        sort_by_neuron_then_token(rows);
        let batch = activations::encode(rows, dense, self.value_type == ValueType::F16)?;
        let schema = batch.schema();
        let path = self
            .staging("activations", name, step, layer)
            .join(format!("part-{:04}.parquet", *part));
        let mut file = AtomicParquet::create(&path, schema, meta)?;
        file.write(&batch)?;
        stats.rows_written += file.finish()?;
        rows.clear();
        *part += 1;
        Ok(())
    }
}

/// Sorts rows by (neuron, token). Rows arrive in token order, so a stable counting sort by
/// neuron (one pass, d_model buckets) leaves each neuron's tokens in order; a bucket that is not
/// (rows from elsewhere) is sorted on its own. A comparison sort of the whole buffer took about
/// as long as encoding the Parquet file.
pub fn sort_by_neuron_then_token(rows: &mut Rows) {
    let buckets = rows
        .iter()
        .map(|r| r.neuron as usize + 1)
        .max()
        .unwrap_or(0);
    let mut start = vec![0usize; buckets + 1];
    for r in rows.iter() {
        start[r.neuron as usize + 1] += 1;
    }
    for i in 1..=buckets {
        start[i] += start[i - 1];
    }
    let empty = ActivationRow {
        neuron: 0,
        token_index: 0,
        value: 0.0,
    };
    let mut sorted = vec![empty; rows.len()];
    let mut next = start.clone();
    for &r in rows.iter() {
        sorted[next[r.neuron as usize]] = r;
        next[r.neuron as usize] += 1;
    }
    for w in start.windows(2) {
        let bucket = &mut sorted[w[0]..w[1]];
        if !bucket.is_sorted_by_key(|r| r.token_index) {
            bucket.sort_unstable_by_key(|r| r.token_index);
        }
    }
    *rows = sorted;
}

/// Rows from the `[B·T, k]` entries of a batch of windows padded to
/// `t` positions (padding dropped).
fn entries_to_rows(
    chunk: &[Window],
    t: usize,
    values: Tensor<2>,
    indices: Tensor<2, Int>,
) -> Result<Rows> {
    let k = values.dims()[1];
    let values = values
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let idx = indices
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut rows = Vec::with_capacity(values.len());
    for (b, w) in chunk.iter().enumerate() {
        for p in 0..w.ids.len() {
            let base = (b * t + p) * k;
            for j in 0..k {
                rows.push(ActivationRow {
                    neuron: idx[base + j] as u16,
                    token_index: w.first + p as u32,
                    value: values[base + j],
                });
            }
        }
    }
    Ok(rows)
}

/// Whose features a recording job writes.
pub enum Features<'a> {
    /// The model's own block outputs, every layer.
    Blocks,
    /// SAE latents of the block outputs at the SAE layers; `fingerprint` identifies the SAEs
    /// (a partition made from other SAEs is re-recorded).
    Sae {
        saes: &'a [(usize, model::sae::Sae)],
        fingerprint: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use queries::parquet_io::read_parquet;

    #[test]
    fn rows_sort_by_neuron_then_token_in_token_order_or_not() {
        let mut rng = model::SplitMix64::new(9, 0);
        // In token order (as the recorder appends them), then shuffled.
        let in_order: Rows = (0..3000u32)
            .flat_map(|t| {
                let n = rng.below(50) as u16;
                let row = |neuron, value| ActivationRow {
                    neuron,
                    token_index: t,
                    value,
                };
                [row(n, t as f32), row((n + 7) % 50, -(t as f32))]
            })
            .collect();
        let mut shuffled = in_order.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i + 1));
        }
        for rows in [in_order, shuffled] {
            let mut expected = rows.clone();
            expected.sort_by_key(ActivationRow::key);
            let mut got = rows;
            sort_by_neuron_then_token(&mut got);
            assert_eq!(got, expected);
        }
    }
    use model::checkpoint::{CheckpointMeta, save_checkpoint};

    fn tiny() -> GptConfig {
        GptConfig {
            topk_k: 4,
            ..GptConfig::micro(40)
        }
    }

    /// `n` evaluation tokens in documents of 23.
    fn tokens(n: usize) -> Vec<TokenRow> {
        (0..n as u32)
            .map(|i| TokenRow {
                token_index: i,
                doc_id: i / 23,
                position: i % 23,
                token_id: (i * 7 + 1) % 40,
                token_text: "t".into(),
                word_index: i,
                word: None,
                concept: None,
                concept_id: None,
            })
            .collect()
    }

    fn tokenizer() -> Tokenizer {
        let texts = ["a b c d e f g h i j k l m n o p q r s t u v w x y z"; 4];
        crate::tokenize::train_bpe(texts.iter().copied(), 60).unwrap()
    }

    fn checkpoint(dir: &Path) -> Checkpoint {
        let device = Device::flex();
        device.seed(5);
        let model = tiny().init(&device);
        let meta = CheckpointMeta {
            step: 7,
            tokens_seen: 0,
            train_loss: None,
            val_loss: None,
            lr: 0.0,
            topk_k: 4,
            dead_fraction: vec![],
            seconds: 0.0,
            sha256: String::new(),
        };
        save_checkpoint(dir, &model, meta).unwrap()
    }

    fn recorder(out: &Path, rows_per_file: usize) -> Recorder {
        Recorder {
            out: out.to_owned(),
            k: 4,
            batch_size: 3,
            rows_per_file,
            value_type: ValueType::F32,
            run_id: "t".into(),
            device: Device::flex(),
            inputs_key: String::new(),
        }
    }

    /// Records checkpoint `cp` as model `m` of the tiny config; returns the counters.
    fn record(rec: &Recorder, cp: &Checkpoint, tokens: &[TokenRow]) -> RecordStats {
        let mut stats = RecordStats::default();
        rec.record_checkpoint("m", &tiny(), cp, None, tokens, &tokenizer(), &mut stats)
            .unwrap();
        stats
    }

    fn read_partition(out: &Path, layer: usize) -> Vec<ActivationRow> {
        let dir = out.join(format!("activations/model=m/step=7/layer={layer}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| activations::decode(&read_parquet(f).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn k_rows_per_token_equal_to_the_block_outputs() {
        let tmp = tempfile::tempdir().unwrap();
        let cp = checkpoint(tmp.path());
        let out = tmp.path().join("record");
        let stats = record(&recorder(&out, ROWS_PER_FILE), &cp, &tokens(100));
        assert_eq!(stats.partitions_written, 3);

        // The weight side of lineage: against itself every neuron's vectors have cosine 1;
        // against a differently initialised model they do not.
        let model_a = load_weights(&tiny(), &cp.dir, &Device::flex()).unwrap();
        let same = neuron_table(&model_a, Some(&model_a), &tiny(), 0, &tokenizer()).unwrap();
        assert_eq!(same.len(), 32);
        assert!(
            same.iter()
                .all(|r| (r.read_cos_prev.unwrap() - 1.0).abs() < 1e-5)
        );
        let first = neuron_table(&model_a, None, &tiny(), 0, &tokenizer()).unwrap();
        assert!(first.iter().all(|r| r.read_cos_prev.is_none()));

        // A direct forward pass over the first document (tokens 0..23, in windows of 16).
        let model = load_weights(&tiny(), &cp.dir, &Device::flex()).unwrap();
        let ids: Vec<i64> = (0..16).map(|i| ((i * 7 + 1) % 40) as i64).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 16]), &Device::flex());
        let hidden = model.block_outputs(x);
        for (layer, hidden) in hidden.iter().enumerate() {
            let rows = read_partition(&out, layer);
            assert_eq!(rows.len(), 4 * 100, "layer {layer}");
            let h = hidden
                .to_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap();
            for token in [0u32, 5, 15] {
                let mine: Vec<(u16, f32)> = rows
                    .iter()
                    .filter(|r| r.token_index == token)
                    .map(|r| (r.neuron, r.value))
                    .collect();
                assert_eq!(mine.len(), 4);
                for (n, v) in &mine {
                    assert_eq!(
                        *v,
                        h[token as usize * 32 + *n as usize],
                        "layer {layer} token {token} neuron {n}"
                    );
                }
                if layer < 2 {
                    // TopK layer: the recorded entries are exactly the non-zero ones.
                    let nonzero = h[token as usize * 32..(token as usize + 1) * 32]
                        .iter()
                        .filter(|v| **v != 0.0)
                        .count();
                    assert_eq!(nonzero, 4);
                }
            }
            // Sorted by neuron, then token.
            assert!(rows.windows(2).all(|w| w[0].key() < w[1].key()));
        }
    }

    #[test]
    fn sae_latents_round_trip_through_safetensors_and_the_activations_table() {
        let tmp = tempfile::tempdir().unwrap();
        let cp = checkpoint(tmp.path());
        let device = Device::flex();
        let model = load_weights(&tiny(), &cp.dir, &device).unwrap();
        // An SAE on layer 1 of this model, trained briefly on its own hidden states, then
        // saved and loaded back.
        let ids: Vec<i64> = (0..64).map(|i| ((i * 7 + 1) % 40) as i64).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [4, 16]), &device);
        let fwd = |x| model.block_outputs(x);
        let hidden = fwd(x)[1]
            .clone()
            .reshape([64, 32])
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        let shape = model::sae::SaeConfig {
            d_in: 32,
            d_sae: 64,
            k: 4,
        };
        let training = model::sae::SaeTrainingConfig {
            steps: 10,
            batch_size: 16,
            lr: 1e-2,
            warmup_steps: 2,
            aux_k: 4,
            aux_coef: 0.03,
            dead_after_tokens: 64,
            seed: 1,
        };
        let trained =
            model::sae::train_sae(&shape, &training, &hidden, &device, &mut |_| {}).unwrap();
        let path = tmp.path().join("layer-1.safetensors");
        model::sae::save_sae(&trained.sae, &path, &[]).unwrap();
        let (sae, _) = model::sae::load_sae(&path, &device).unwrap();

        let out = tmp.path().join("record");
        let saes = vec![(1usize, sae.clone())];
        let features = Features::Sae {
            saes: &saes,
            fingerprint: "f".into(),
        };
        let mut stats = RecordStats::default();
        recorder(&out, ROWS_PER_FILE)
            .record_features(
                "m",
                &tiny(),
                &cp,
                None,
                &features,
                &tokens(100),
                &tokenizer(),
                &mut stats,
            )
            .unwrap();
        assert_eq!(stats.partitions_written, 1, "the SAE's layer only");
        assert!(!out.join("activations/model=m/step=7/layer=0").exists());
        let rows = read_partition(&out, 1);
        assert_eq!(rows.len(), 4 * 100, "k latents per token");

        // The first window (tokens 0..16 of document 0) encoded directly.
        let ids: Vec<i64> = (0..16).map(|i| ((i * 7 + 1) % 40) as i64).collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 16]), &device);
        let z = trained.sae.encode(fwd(x)[1].clone().reshape([16, 32]));
        let values = z.values.into_data().try_into_vec::<f32>().unwrap();
        let idx = z
            .indices
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap();
        for token in [0u32, 7, 15] {
            let mut table: Vec<(u16, f32)> = rows
                .iter()
                .filter(|r| r.token_index == token)
                .map(|r| (r.neuron, r.value))
                .collect();
            let mut direct: Vec<(u16, f32)> = (0..4)
                .map(|j| {
                    (
                        idx[token as usize * 4 + j] as u16,
                        values[token as usize * 4 + j],
                    )
                })
                .collect();
            table.sort_by_key(|r| r.0);
            direct.sort_by_key(|r| r.0);
            assert_eq!(table, direct, "token {token}");
        }
        // The neurons rows describe the 64 latents, with unit-norm write (decoder) vectors.
        let latents = latent_table(&model, &sae, &tokenizer()).unwrap();
        assert_eq!(latents.len(), 64);
        assert!(latents.iter().all(|r| (r.write_norm - 1.0).abs() < 1e-4));
    }

    #[test]
    fn rerun_after_a_crash_keeps_complete_partitions_and_rewrites_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let cp = checkpoint(tmp.path());
        let toks = tokens(60);
        let clean = tmp.path().join("clean");
        record(&recorder(&clean, ROWS_PER_FILE), &cp, &toks);

        let crashed = tmp.path().join("crashed");
        record(&recorder(&crashed, ROWS_PER_FILE), &cp, &toks);
        // Simulate a kill during layer 1: its files are gone and a temporary file is left.
        let part = crashed.join("activations/model=m/step=7/layer=1");
        std::fs::remove_dir_all(&part).unwrap();
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join(".part-0000.parquet.tmp"), b"half a file").unwrap();
        let stats = record(&recorder(&crashed, ROWS_PER_FILE), &cp, &toks);
        assert_eq!((stats.partitions_written, stats.partitions_kept), (1, 2));
        for layer in 0..3 {
            assert_eq!(
                read_partition(&clean, layer),
                read_partition(&crashed, layer),
                "layer {layer}"
            );
        }
        // Nothing to do the third time.
        let stats = record(&recorder(&crashed, ROWS_PER_FILE), &cp, &toks);
        assert_eq!((stats.partitions_written, stats.partitions_kept), (0, 3));
    }

    #[test]
    fn f16_storage_rounds_the_same_rows_to_half_precision() {
        let tmp = tempfile::tempdir().unwrap();
        let cp = checkpoint(tmp.path());
        let toks = tokens(50);
        let exact = tmp.path().join("f32");
        record(&recorder(&exact, ROWS_PER_FILE), &cp, &toks);
        let half = tmp.path().join("f16");
        let rec = Recorder {
            value_type: ValueType::F16,
            ..recorder(&half, ROWS_PER_FILE)
        };
        record(&rec, &cp, &toks);
        for layer in 0..3 {
            let (a, b) = (read_partition(&exact, layer), read_partition(&half, layer));
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.key(), y.key());
                // Half precision keeps 11 significant bits: relative error ≤ 2^-11.
                assert!(
                    (x.value - y.value).abs() <= x.value.abs() * 4.9e-4 + 6e-8,
                    "{} vs {}",
                    x.value,
                    y.value
                );
            }
        }
        // Switching the value type makes every partition stale.
        let stats = record(&recorder(&half, ROWS_PER_FILE), &cp, &toks);
        assert_eq!(stats.partitions_written, 3);
    }

    #[test]
    fn buffered_rows_stay_bounded_when_the_evaluation_set_doubles() {
        let tmp = tempfile::tempdir().unwrap();
        let cp = checkpoint(tmp.path());
        let bound = 200;
        let mut maxima = Vec::new();
        for n in [300, 600] {
            let out = tmp.path().join(format!("r{n}"));
            let stats = record(&recorder(&out, bound), &cp, &tokens(n));
            assert_eq!(read_partition(&out, 0).len(), 4 * n);
            // Several part files, moved into place together; nothing left in staging.
            let parts = std::fs::read_dir(out.join("activations/model=m/step=7/layer=0"))
                .unwrap()
                .count();
            assert!(parts >= 2, "{parts} part files");
            assert!(
                !out.join(STAGING)
                    .join("activations/model=m/step=7/layer=0")
                    .exists()
            );
            maxima.push(stats.max_rows_buffered);
        }
        // At most one flush threshold plus one forward batch (3 windows × 16 tokens × k = 4).
        for m in &maxima {
            assert!(*m < bound + 3 * 16 * 4, "{maxima:?}");
        }
    }
}
