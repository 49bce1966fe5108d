//! Training tokens/s of the TopK model and its dense baseline on one backend, without the
//! pipeline's build (DataFusion and all): for a GPU machine that only needs this binary.
//!
//!     cargo run -p model --features wgpu --example train_speed -- backend=wgpu preset=small
//!
//! Arguments (`key=value`, all optional): `backend` (flex), `preset` (tiny), `vocab` (2048),
//! `batch` (16), `shards` (1), `steps` (15 measured after 3 warm-up), `rounds` (2, the fastest
//! kept), or `card=<model>/config.json` of a trained run, whose model shape, batch size and
//! shards are used; then any `GptConfig` field overrides the shape
//! (`d_model=1024 n_layers=8 d_ff=4096 block_size=256 topk_select=host`).
use model::checkpoint::read_card;
use model::train::{SpeedRun, compare, synthetic_tokens};
use model::{GptConfig, Preset};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<(String, String)> = std::env::args()
        .skip(1)
        .map(|a| match a.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("`{a}`: arguments are key=value")),
        })
        .collect::<Result<_, _>>()?;
    let arg = |key: &str, default: &str| {
        args.iter()
            .find(|(k, _)| k == key)
            .map_or(default.to_string(), |(_, v)| v.clone())
    };
    let number = |key: &str, default: &str| -> Result<usize, String> {
        arg(key, default)
            .parse()
            .map_err(|_| format!("`{key}` must be a whole number"))
    };
    let (mut cfg, mut batch, mut shards) = {
        let preset: Preset = serde_json::from_str(&format!("\"{}\"", arg("preset", "tiny")))
            .map_err(|_| "`preset` is one of tiny, small, paper")?;
        let cfg = GptConfig::preset(preset, number("vocab", "2048")?);
        (cfg, number("batch", "16")?, number("shards", "1")?)
    };
    let card = arg("card", "");
    if !card.is_empty() {
        let dir = std::path::Path::new(&card)
            .parent()
            .ok_or("`card` is a model's config.json")?;
        let card = read_card(dir)?;
        cfg = card.model;
        if let Some(training) = card.training {
            (batch, shards) = (training.batch_size, training.parallel_shards);
        }
    }
    let mut shape = serde_json::to_value(&cfg)?;
    for (key, value) in &args {
        match shape.get_mut(key) {
            Some(field) if field.is_u64() => {
                *field = value
                    .parse::<u64>()
                    .map_err(|_| format!("`{key}` must be a whole number"))?
                    .into();
            }
            Some(field) if field.is_string() => *field = value.as_str().into(),
            _ => {}
        }
    }
    let cfg: GptConfig = serde_json::from_value(shape)?;
    cfg.validate()?;
    let backend = arg("backend", "flex");
    let device = model::device(&backend)?;
    let run = SpeedRun {
        measured_steps: number("steps", "15")?,
        rounds: number("rounds", "2")?,
        ..SpeedRun::default()
    };
    println!(
        "train speed: backend {backend}, d_model {}, {} layers ({} TopK, k = {}, selected {:?}), context {}, batch {batch} in {shards} shards, {} parameters",
        cfg.d_model,
        cfg.n_layers,
        cfg.n_topk_layers(),
        cfg.topk_k,
        cfg.topk_select,
        cfg.block_size,
        cfg.n_params()
    );
    let tokens = synthetic_tokens(cfg.vocab_size, 200_000, 7);
    let speed = compare(&cfg, batch, shards, &tokens, &device, run);
    println!("{speed}");
    println!(
        "  achieved {:.1} GFLOP/s (6 × params × tokens/s, TopK f32)",
        6.0 * cfg.n_params() as f64 * speed.topk / 1e9
    );
    Ok(())
}
