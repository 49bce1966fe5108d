//! Trains a model again from a run's `config.json` and token streams on another backend, and
//! prints its validation losses beside the original run's: checks a GPU against the CPU run
//! without the pipeline's build.
//!
//!     cargo run -p model --features wgpu --example retrain -- \
//!         runs/default/train/topk runs/default/prepare /tmp/retrain wgpu [f16]
//!
//! Arguments: the trained model's folder (its `config.json` and checkpoints), the prepare
//! folder (`train.bin`, `val.bin`), an empty output folder, the backend, and optionally
//! `train.precision`.
use std::path::{Path, PathBuf};

use model::checkpoint::{list_checkpoints, read_card};
use model::train::{Precision, train};

/// Token ids of a little-endian u32 file written by `pipeline prepare`.
fn read_tokens(path: &Path) -> Result<Vec<u32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() % 4 != 0 {
        return Err(format!("{}: truncated", path.display()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [original, prepared, out, backend, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: retrain <model dir> <prepare dir> <out dir> <backend> [precision]".into(),
        );
    };
    let (original, prepared) = (PathBuf::from(original), PathBuf::from(prepared));
    let card = read_card(&original)?;
    let mut training = card
        .training
        .ok_or("the model was loaded, not trained: it has no training config")?;
    if let Some(p) = rest.first() {
        training.precision = serde_json::from_str::<Precision>(&format!("\"{p}\""))
            .map_err(|_| format!("`{p}`: precision is f32, bf16 or f16"))?;
    }
    let train_tokens = read_tokens(&prepared.join("train.bin"))?;
    let val_tokens = read_tokens(&prepared.join("val.bin"))?;
    let device = model::device(backend)?;
    println!(
        "retrain {} on {backend} in {}: {} steps of {} × {} tokens",
        card.name,
        training.precision.name(),
        training.steps,
        training.batch_size * training.grad_accum,
        card.model.block_size
    );
    let outcome = train(
        &card.name,
        &card.model,
        &training,
        &train_tokens,
        &val_tokens,
        Path::new(out),
        &device,
        &mut |_| {},
    )?;
    let before = list_checkpoints(&original)?;
    println!("  step  val loss here  val loss original  difference");
    for c in &outcome.checkpoints {
        let here = c.meta.val_loss.unwrap_or(f32::NAN);
        let there = before
            .iter()
            .find(|b| b.meta.step == c.meta.step)
            .and_then(|b| b.meta.val_loss)
            .unwrap_or(f32::NAN);
        println!(
            "  {:>5}  {here:>13.4}  {there:>17.4}  {:>+10.4}",
            c.meta.step,
            here - there
        );
    }
    println!("  {:.0} tokens/s", outcome.tokens_per_second);
    Ok(())
}
