//! `pipeline bench serve`: how fast the explorer answers on this machine, over the configured
//! run — the neuron page for 100 random neurons (each at its model's last checkpoint, all
//! sections), searches by concept, word and number, and steering requests of 40 tokens. Times
//! are measured in process, around the same functions the HTTP handlers call.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::AppState;
use super::explorer::{NeuronParams, SearchParams};
use super::playground::SteerParams;
use crate::stages::Ctx;
use crate::stages::analyze::runtime;

/// Prints median and 90th-percentile times of each kind of request.
pub fn run(ctx: &Ctx) -> Result<()> {
    let rt = runtime()?;
    rt.block_on(async {
        let state = AppState::open(ctx, Duration::from_secs(120)).await?;
        let view = state.view().await.map_err(|e| anyhow::anyhow!(e.message))?;
        let ex = &view.explorer;
        if ex.models.is_empty() {
            bail!("the run has no recorded activations; run `pipeline run all` first");
        }
        let rows: u64 = ex
            .query("SELECT COUNT(*) AS n FROM activations")
            .await
            .ok()
            .and_then(|r| r.first()?.get("n")?.as_u64())
            .unwrap_or(0);
        let checkpoints: usize = ex.models.iter().map(|m| m.steps.len()).sum();
        println!(
            "explorer over {} ({} models, {checkpoints} checkpoints, {rows} activation rows)",
            ctx.layout.root().display(),
            ex.models.len()
        );
        let mut rng = model::SplitMix64::new(ctx.cfg.data.seed, 0x5e7e);

        let mut neuron = Vec::new();
        for _ in 0..100 {
            let m = &ex.models[rng.below(ex.models.len())];
            let layer = rng.below(m.layers.len());
            let p = NeuronParams {
                model: m.name.clone(),
                layer,
                neuron: rng.below(m.layers[layer].max(1)),
                step: None,
            };
            let t = Instant::now();
            ex.neuron_page(&p)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            neuron.push(t.elapsed());
        }
        report("neuron page (all sections)", &mut neuron);

        let mut search = Vec::new();
        let words = ["the", "time", "king", "water", "house"];
        for i in 0..30 {
            let q = match i % 3 {
                0 => ex.concepts[rng.below(ex.concepts.len().max(1))].clone(),
                1 => words[rng.below(words.len())].to_owned(),
                _ => rng.below(64).to_string(),
            };
            let p = SearchParams {
                q,
                ..Default::default()
            };
            let t = Instant::now();
            ex.search(&p)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            search.push(t.elapsed());
        }
        report("search (all models, concept/word/number)", &mut search);

        let mut steer = Vec::new();
        let m = ex
            .models
            .iter()
            .find(|m| m.name == "topk")
            .unwrap_or(&ex.models[0]);
        for i in 0..5 {
            let p = SteerParams {
                model: m.name.clone(),
                step: None,
                neurons: format!("1:{}", rng.below(m.layers[1.min(m.layers.len() - 1)])),
                prompt: None,
                mode: None,
                strength: None,
                relative: None,
                tokens: Some(40),
                temperature: None,
                seed: Some(i),
                concept: None,
            };
            let t = Instant::now();
            view.playground
                .steer(ex, p)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            steer.push(t.elapsed());
        }
        report(
            "steering, 40 tokens plain + steered (first loads the checkpoint)",
            &mut steer,
        );
        Ok(())
    })
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
    println!(
        "{what:<66} n={:>3}  median {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
        times.len(),
        at(0.5),
        at(0.9),
        at(1.0)
    );
}
