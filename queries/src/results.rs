//! Typed rows of the queries whose results are read back in Rust: one struct per query of
//! `queries/sql/report/` (and the neuron pages' lookups), fields named as the columns.

use crate::query_row;

query_row! {
    /// `loss_curves.sql`: validation loss at each checkpoint.
    pub struct LossPoint {
        pub model: String,
        pub tokens: u64,
        pub val_loss: f64,
    }
}

query_row! {
    /// `entropy_by_layer.sql`: entropy quartiles per layer at the last checkpoint.
    pub struct LayerEntropy {
        pub model: String,
        pub layer: u16,
        pub token_entropy_median: Option<f64>,
        pub token_entropy_q1: Option<f64>,
        pub token_entropy_q3: Option<f64>,
        pub semantic_entropy_median: Option<f64>,
        pub semantic_entropy_q1: Option<f64>,
        pub semantic_entropy_q3: Option<f64>,
    }
}

query_row! {
    /// `entropy_over_training.sql`: per layer and checkpoint.
    pub struct LayerOverTraining {
        pub model: String,
        pub layer: u16,
        pub step: u32,
        pub semantic_entropy_median: Option<f64>,
        pub semantic_entropy_q1: Option<f64>,
        pub semantic_entropy_q3: Option<f64>,
        /// None at a model's first checkpoint (nothing to compare with).
        pub stable_share: Option<f64>,
        pub dead_share: Option<f64>,
    }
}

query_row! {
    /// `formation_counts.sql`: neurons of a layer that form at a step.
    pub struct FormationCount {
        pub model: String,
        pub layer: u16,
        pub formation_step: u32,
        pub n: u64,
    }
}

query_row! {
    /// `frequency_bins.sql`: neurons per decade of activation frequency (−9: dead).
    pub struct FrequencyBin {
        pub model: String,
        pub decade: i64,
        pub n: u64,
    }
}

query_row! {
    /// `cross_layer_summary.sql`: mean cosine of neuron i in layers l and l + 1.
    pub struct CrossLayer {
        pub model: String,
        pub layer: u16,
        pub step: u32,
        pub mean_cosine: Option<f64>,
    }
}

query_row! {
    /// `stability_over_training.sql`: surviving share per comparison and checkpoint.
    pub struct StabilityPoint {
        pub model: String,
        pub comparison: String,
        pub method: String,
        pub step: u32,
        pub share_stable: f64,
    }
}

query_row! {
    /// `stability_summary.sql`: the stability table of the report.
    pub struct StabilitySummary {
        pub model: String,
        pub comparison: String,
        pub method: String,
        pub share_stable: f64,
        pub mean_cosine: Option<f64>,
        pub n_pairs: u64,
    }
}

query_row! {
    /// `steering_dose.sql`: mean effect per strength.
    pub struct SteeringDose {
        pub model: String,
        pub concept: String,
        pub strength: f64,
        pub concept_share: f64,
        pub perplexity: f64,
    }
}

query_row! {
    /// `entropy_differences.sql`: TopK minus dense per layer, with a bootstrap interval.
    pub struct EntropyDifference {
        pub model: String,
        pub baseline: String,
        pub measure: String,
        pub layer: u16,
        pub difference: f64,
        pub lo: f64,
        pub hi: f64,
    }
}

query_row! {
    /// `steerability.sql`: the best gain in concept share over unsteered, per checkpoint.
    pub struct Steerability {
        pub model: String,
        pub concept: String,
        pub step: u32,
        pub gain: f64,
        pub strength: f64,
    }
}

query_row! {
    /// `steering_examples.sql`: texts at the largest strength.
    pub struct SteeringExample {
        pub model: String,
        pub neurons: String,
        pub concept: String,
        pub text: String,
    }
}

query_row! {
    /// `top_neurons.sql`: the most concept-specific neurons of each layer.
    pub struct TopNeuron {
        pub model: String,
        pub step: u32,
        pub layer: u16,
        pub neuron: u16,
        pub top_concept: String,
        pub top_share: f64,
        pub semantic_entropy: f64,
        pub token_entropy: Option<f64>,
        pub frequency: Option<f64>,
        pub max_value: Option<f64>,
        pub n_obs: u64,
        pub top_promoted: Option<String>,
        pub top_suppressed: Option<String>,
        /// None: the neuron has not formed by the last checkpoint.
        pub formation_step: Option<u32>,
    }
}

query_row! {
    /// `neuron_concepts.sql`: a neuron's activation weight per concept.
    pub struct NeuronConcept {
        pub model: String,
        pub layer: u16,
        pub neuron: u16,
        pub concept: String,
        pub share: f64,
    }
}

query_row! {
    /// `neuron_histograms.sql`: activation values in tenths of the neuron's maximum.
    pub struct HistogramBin {
        pub model: String,
        pub layer: u16,
        pub neuron: u16,
        /// None where the neuron's largest value is 0 (no scale to bin by).
        pub bin: Option<i64>,
        pub top: f64,
        pub n: u64,
    }
}

query_row! {
    /// `neuron_contexts.sql`: a neuron's top-activating contexts.
    pub struct NeuronContext {
        pub model: String,
        pub layer: u16,
        pub neuron: u16,
        pub value: f64,
        pub token_text: Option<String>,
        pub left_context: Option<String>,
        pub right_context: Option<String>,
    }
}

query_row! {
    /// `neuron_entropy_over_steps.sql`: a neuron's semantic entropy at each checkpoint.
    pub struct NeuronEntropy {
        pub model: String,
        pub layer: u16,
        pub neuron: u16,
        pub step: u32,
        pub entropy_norm: Option<f64>,
    }
}
