//! Pure schedules: learning rate, TopK k, and which steps are checkpointed.

use super::TrainingConfig;

/// Learning rate at `step` (nanoGPT's schedule).
pub fn lr_at(step: usize, cfg: &TrainingConfig) -> f64 {
    let min_lr = cfg.lr * cfg.min_lr_ratio;
    // 1) linear warm-up
    if step < cfg.warmup_steps {
        return cfg.lr * (step + 1) as f64 / cfg.warmup_steps as f64;
    }
    // 2) past the end, the floor
    if step >= cfg.steps {
        return min_lr;
    }
    // 3) in between, cosine decay from lr to min_lr
    let progress = (step - cfg.warmup_steps) as f64 / (cfg.steps - cfg.warmup_steps).max(1) as f64;
    let coeff = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    min_lr + coeff * (cfg.lr - min_lr)
}

/// k of the TopK blocks at `step`: linear from `topk_k_start` to `k` over the anneal steps. A
/// start at or above `d_model` starts dense.
pub fn topk_k_at(step: usize, k: usize, d_model: usize, cfg: &TrainingConfig) -> usize {
    let start = cfg.topk_k_start.min(d_model);
    if start <= k || cfg.topk_anneal_steps == 0 || step >= cfg.topk_anneal_steps {
        return k;
    }
    let left = (cfg.topk_anneal_steps - step) as f64 / cfg.topk_anneal_steps as f64;
    k + ((start - k) as f64 * left).round() as usize
}

/// Steps at which a checkpoint is written: 0, 1, 2, 4, … (log-spaced, like Pythia's) below
/// `checkpoint_every`, then every `checkpoint_every`, and always the last step.
pub fn checkpoint_steps(cfg: &TrainingConfig) -> Vec<usize> {
    let mut steps = vec![0];
    let mut s = 1;
    while s < cfg.checkpoint_every.min(cfg.steps) {
        steps.push(s);
        s *= 2;
    }
    steps.extend((1..=cfg.steps / cfg.checkpoint_every).map(|i| i * cfg.checkpoint_every));
    if steps.last() != Some(&cfg.steps) {
        steps.push(cfg.steps);
    }
    steps.dedup();
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lr_warms_up_then_decays_to_the_floor() {
        let cfg = TrainingConfig {
            steps: 100,
            warmup_steps: 10,
            lr: 1.0,
            min_lr_ratio: 0.1,
            ..TrainingConfig::tiny()
        };
        assert!((lr_at(0, &cfg) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, &cfg) - 1.0).abs() < 1e-12);
        assert!((lr_at(10, &cfg) - 1.0).abs() < 1e-12);
        // Halfway through the decay the cosine is at its midpoint: (1 + 0.1) / 2.
        assert!((lr_at(55, &cfg) - 0.55).abs() < 1e-12);
        assert!((lr_at(100, &cfg) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn checkpoints_are_log_spaced_then_even() {
        let cfg = TrainingConfig {
            steps: 250,
            checkpoint_every: 100,
            ..TrainingConfig::tiny()
        };
        assert_eq!(
            checkpoint_steps(&cfg),
            vec![0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 250]
        );
    }

    #[test]
    fn k_anneals_linearly_from_start_to_target() {
        let cfg = TrainingConfig {
            topk_k_start: 116,
            topk_anneal_steps: 100,
            ..TrainingConfig::tiny()
        };
        assert_eq!(topk_k_at(0, 16, 128, &cfg), 116);
        assert_eq!(topk_k_at(50, 16, 128, &cfg), 66);
        assert_eq!(topk_k_at(100, 16, 128, &cfg), 16);
        let off = TrainingConfig {
            topk_k_start: 0,
            ..TrainingConfig::tiny()
        };
        assert_eq!(topk_k_at(5, 16, 128, &off), 16);
    }

    #[test]
    fn a_start_above_d_model_starts_dense() {
        let cfg = TrainingConfig {
            topk_k_start: 1000,
            topk_anneal_steps: 10,
            ..TrainingConfig::tiny()
        };
        assert_eq!(topk_k_at(0, 8, 64, &cfg), 64);
        assert_eq!(topk_k_at(5, 8, 64, &cfg), 36);
        assert_eq!(topk_k_at(10, 8, 64, &cfg), 8);
    }
}
