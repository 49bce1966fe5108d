//! The SQL of every derived table, loaded from `queries/sql/*.sql`, and its parameters.
//!
//! Files use `{{name}}` placeholders for the few analysis options (weights, thresholds); they
//! are substituted before planning so each file stays plain SQL a user can read and re-run.

/// One derived table: its name (also the table name in the session) and SQL.
#[derive(Debug, Clone, Copy)]
pub struct DerivedTable {
    pub name: &'static str,
    pub sql: &'static str,
    /// Tables this one reads besides the recorded ones.
    pub needs: &'static [&'static str],
    /// Columns of `neurons` whose distinct values cut the work into slices run one at a
    /// time (`{{slice}}` in the SQL), so self-joins hold one slice in memory; empty: one run.
    pub slice_by: &'static [&'static str],
}

/// Derived tables in dependency order.
pub const DERIVED_TABLES: &[DerivedTable] = &[
    DerivedTable {
        name: "neuron_stats",
        sql: include_str!("../sql/neuron_stats.sql"),
        needs: &[],
        slice_by: &[],
    },
    DerivedTable {
        name: "token_entropy",
        sql: include_str!("../sql/token_entropy.sql"),
        needs: &[],
        slice_by: &[],
    },
    DerivedTable {
        name: "semantic_entropy",
        sql: include_str!("../sql/semantic_entropy.sql"),
        needs: &[],
        slice_by: &[],
    },
    DerivedTable {
        name: "top_contexts",
        sql: include_str!("../sql/top_contexts.sql"),
        needs: &[],
        slice_by: &[],
    },
    DerivedTable {
        name: "checkpoint_pairs",
        sql: include_str!("../sql/checkpoint_pairs.sql"),
        needs: &["neuron_stats"],
        slice_by: &[],
    },
    DerivedTable {
        name: "lineage",
        sql: include_str!("../sql/lineage.sql"),
        needs: &["neuron_stats", "checkpoint_pairs"],
        slice_by: &["model", "layer"],
    },
    DerivedTable {
        name: "cross_layer",
        sql: include_str!("../sql/cross_layer.sql"),
        needs: &[],
        slice_by: &["model", "step"],
    },
    DerivedTable {
        name: "formation",
        sql: include_str!("../sql/formation.sql"),
        needs: &["semantic_entropy"],
        slice_by: &[],
    },
    DerivedTable {
        name: "layer_summary",
        sql: include_str!("../sql/layer_summary.sql"),
        needs: &[
            "neuron_stats",
            "token_entropy",
            "semantic_entropy",
            "lineage",
        ],
        slice_by: &[],
    },
];

/// What an activation counts for in the entropies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weight {
    /// Its absolute value.
    Value,
    /// One, whatever its value.
    Count,
}

/// Options of the analysis (the `[analyze]` section of the pipeline config).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisParams {
    /// Weight of an activation in the entropies: `value` (|value|) or `count` (1 each).
    pub weight: Weight,
    /// Count tokens with no concept as one "none" concept in semantic entropy.
    pub none_as_concept: bool,
    /// Neurons with fewer observations are flagged `low_count`.
    pub min_count: u32,
    /// Top activating contexts kept per neuron.
    pub top_n: u32,
    /// Tokens of context before and after an activating token.
    pub context_before: u32,
    pub context_after: u32,
    /// Cosine at or above which a neuron counts as stable between checkpoints.
    pub stable_cosine: f64,
    /// Normalised semantic entropy below which a neuron counts as formed.
    pub formation_entropy: f64,
    /// Bootstrap resamples of the evaluation documents behind `entropy_intervals` and
    /// `entropy_differences` (0: no intervals).
    #[serde(default = "default_resamples")]
    pub bootstrap_resamples: usize,
    /// Seed of the bootstrap's draws.
    #[serde(default = "default_bootstrap_seed")]
    pub bootstrap_seed: u64,
}

fn default_resamples() -> usize {
    200
}

fn default_bootstrap_seed() -> u64 {
    1
}

impl Default for AnalysisParams {
    fn default() -> Self {
        Self {
            weight: Weight::Value,
            none_as_concept: false,
            min_count: 20,
            top_n: 10,
            context_before: 8,
            context_after: 3,
            stable_cosine: 0.7,
            formation_entropy: 0.5,
            bootstrap_resamples: default_resamples(),
            bootstrap_seed: default_bootstrap_seed(),
        }
    }
}

impl AnalysisParams {
    /// Checks option values, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.stable_cosine) {
            return Err(format!(
                "`analyze.stable_cosine` = {}: must be in [0, 1]",
                self.stable_cosine
            ));
        }
        Ok(())
    }

    /// The SQL of `table` with every placeholder filled in.
    pub fn render(&self, sql: &str) -> String {
        let weight = match self.weight {
            Weight::Count => "1.0",
            Weight::Value => "ABS(a.value)",
        };
        let (concept_filter, none_rule) = if self.none_as_concept {
            ("TRUE", "counted as one \"none\" concept")
        } else {
            ("t.concept_id IS NOT NULL", "left out")
        };
        sql.replace("{{weight}}", weight)
            .replace("{{concept_filter}}", concept_filter)
            .replace("{{none_rule}}", none_rule)
            .replace("{{min_count}}", &self.min_count.to_string())
            .replace("{{top_n}}", &self.top_n.to_string())
            .replace("{{before}}", &self.context_before.to_string())
            .replace("{{after}}", &self.context_after.to_string())
            .replace("{{stable_cosine}}", &format!("{:?}", self.stable_cosine))
            .replace(
                "{{formation_entropy}}",
                &format!("{:?}", self.formation_entropy),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let params = AnalysisParams::default();
        for table in DERIVED_TABLES {
            let sql = params.render(table.sql);
            let sql = sql.replace("{{slice}}", "TRUE");
            assert!(!sql.contains("{{"), "{} keeps a placeholder", table.name);
        }
    }

    /// Whether `sql` reads `table` (`FROM table` or `JOIN table`, comments aside).
    fn reads(sql: &str, table: &str) -> bool {
        let code: String = sql
            .lines()
            .map(|l| l.split("--").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .collect();
        words.windows(2).any(|w| {
            (w[0].eq_ignore_ascii_case("FROM") || w[0].eq_ignore_ascii_case("JOIN"))
                && w[1] == table
        })
    }

    #[test]
    fn derived_tables_declare_the_earlier_tables_they_read() {
        assert!(reads("SELECT a FROM x JOIN y ON TRUE", "y"));
        assert!(!reads("-- FROM y\nSELECT y FROM x", "y"));
        for (i, table) in DERIVED_TABLES.iter().enumerate() {
            for other in DERIVED_TABLES.iter().filter(|t| t.name != table.name) {
                assert_eq!(
                    reads(table.sql, other.name),
                    table.needs.contains(&other.name),
                    "{} reads {}: `needs` must say so exactly",
                    table.name,
                    other.name
                );
            }
            for need in table.needs {
                assert!(
                    DERIVED_TABLES[..i].iter().any(|t| t.name == *need),
                    "{} needs {need}, which is not computed before it",
                    table.name
                );
            }
        }
    }
}

/// Queries the report draws from, one file each under `queries/sql/report/`.
pub mod report {
    pub const LOSS_CURVES: &str = include_str!("../sql/report/loss_curves.sql");
    pub const ENTROPY_BY_LAYER: &str = include_str!("../sql/report/entropy_by_layer.sql");
    pub const ENTROPY_OVER_TRAINING: &str = include_str!("../sql/report/entropy_over_training.sql");
    pub const FORMATION_COUNTS: &str = include_str!("../sql/report/formation_counts.sql");
    pub const FREQUENCY_BINS: &str = include_str!("../sql/report/frequency_bins.sql");
    pub const TOP_NEURONS: &str = include_str!("../sql/report/top_neurons.sql");
    pub const NEURON_CONCEPTS: &str = include_str!("../sql/report/neuron_concepts.sql");
    pub const NEURON_HISTOGRAMS: &str = include_str!("../sql/report/neuron_histograms.sql");
    pub const STEERING_DOSE: &str = include_str!("../sql/report/steering_dose.sql");
    pub const STEERING_EXAMPLES: &str = include_str!("../sql/report/steering_examples.sql");
    pub const STEERABILITY: &str = include_str!("../sql/report/steerability.sql");
    pub const ENTROPY_DIFFERENCES: &str = include_str!("../sql/report/entropy_differences.sql");
    pub const CROSS_LAYER_SUMMARY: &str = include_str!("../sql/report/cross_layer_summary.sql");
    pub const STABILITY_OVER_TRAINING: &str =
        include_str!("../sql/report/stability_over_training.sql");
    pub const STABILITY_SUMMARY: &str = include_str!("../sql/report/stability_summary.sql");
    pub const NEURON_CONTEXTS: &str = include_str!("../sql/report/neuron_contexts.sql");
    pub const NEURON_ENTROPY_OVER_STEPS: &str =
        include_str!("../sql/report/neuron_entropy_over_steps.sql");
}

/// Queries of `pipeline steer`, one file each under `queries/sql/steer/`.
pub mod steer {
    pub const CONCEPT_NEURONS: &str = include_str!("../sql/steer/concept_neurons.sql");
    pub const NEURON_MAX: &str = include_str!("../sql/steer/neuron_max.sql");
    pub const CONCEPTS: &str = include_str!("../sql/steer/concepts.sql");
    pub const BEST_CONCEPTS: &str = include_str!("../sql/steer/best_concepts.sql");

    pub use super::render;
}

/// Fills `{{key}}` placeholders; string values have quotes doubled.
pub fn render(sql: &str, params: &[(&str, String)]) -> String {
    params.iter().fold(sql.to_owned(), |s, (k, v)| {
        s.replace(&format!("{{{{{k}}}}}"), &v.replace('\'', "''"))
    })
}

/// Typed values for `{{name}}` placeholders: each becomes exactly one SQL literal, never SQL
/// (URL parameters of `pipeline serve`, the bootstrap's slice keys).
pub mod literal {
    /// One value in place of a placeholder.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Literal {
        Str(String),
        Int(i64),
        Float(f64),
        Null,
    }

    impl Literal {
        /// The value as SQL: strings quoted with quotes doubled, floats cast to DOUBLE, and
        /// NULL for a missing or non-finite value.
        pub fn sql(&self) -> String {
            match self {
                Literal::Str(s) => format!("'{}'", s.replace('\'', "''")),
                Literal::Int(i) => i.to_string(),
                Literal::Float(f) if f.is_finite() => format!("CAST({f:?} AS DOUBLE)"),
                Literal::Float(_) | Literal::Null => "NULL".to_owned(),
            }
        }
    }

    impl From<&str> for Literal {
        fn from(s: &str) -> Self {
            Literal::Str(s.to_owned())
        }
    }

    impl From<usize> for Literal {
        fn from(i: usize) -> Self {
            Literal::Int(i as i64)
        }
    }

    impl From<f64> for Literal {
        fn from(f: f64) -> Self {
            Literal::Float(f)
        }
    }

    impl<T: Into<Literal>> From<Option<T>> for Literal {
        fn from(v: Option<T>) -> Self {
            v.map_or(Literal::Null, Into::into)
        }
    }

    /// Fills every `{{name}}` of `sql` with its literal.
    pub fn fill(sql: &str, params: &[(&str, Literal)]) -> String {
        params.iter().fold(sql.to_owned(), |s, (k, v)| {
            s.replace(&format!("{{{{{k}}}}}"), &v.sql())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_literal_is_one_sql_value() {
            let sql = fill(
                "SELECT {{a}}, {{b}}, {{c}}, {{d}}, {{e}}",
                &[
                    ("a", "it's'; DROP TABLE x; --".into()),
                    ("b", 7usize.into()),
                    ("c", 0.25.into()),
                    ("d", Option::<usize>::None.into()),
                    ("e", f64::NAN.into()),
                ],
            );
            assert_eq!(
                sql,
                "SELECT 'it''s''; DROP TABLE x; --', 7, CAST(0.25 AS DOUBLE), NULL, NULL"
            );
        }
    }
}

/// Queries of `pipeline serve`, one file each under `queries/sql/serve/`. Their `{{name}}`
/// placeholders take typed values ([`literal::Literal`]), so a parameter from a URL is always one SQL
/// literal, never SQL.
pub mod serve {
    pub const OVERVIEW: &str = include_str!("../sql/serve/overview.sql");
    pub const CONCEPTS: &str = include_str!("../sql/serve/concepts.sql");
    pub const SEARCH_CONCEPT: &str = include_str!("../sql/serve/search_concept.sql");
    pub const SEARCH_WORD: &str = include_str!("../sql/serve/search_word.sql");
    pub const SEARCH_NUMBER: &str = include_str!("../sql/serve/search_number.sql");
    pub const NEURON_OVER_STEPS: &str = include_str!("../sql/serve/neuron_over_steps.sql");
    pub const NEURON_CONTEXTS: &str = include_str!("../sql/serve/neuron_contexts.sql");
    pub const NEURON_TOKENS: &str = include_str!("../sql/serve/neuron_tokens.sql");
    pub const NEURON_CONCEPTS: &str = include_str!("../sql/serve/neuron_concepts.sql");
    pub const NEURON_HISTOGRAM: &str = include_str!("../sql/serve/neuron_histogram.sql");
    pub const NEURON_WEIGHTS: &str = include_str!("../sql/serve/neuron_weights.sql");
    pub const NEURON_LAYERS: &str = include_str!("../sql/serve/neuron_layers.sql");
    pub const NEURON_MATCHES: &str = include_str!("../sql/serve/neuron_matches.sql");
    pub const NEURON_MAX: &str = include_str!("../sql/serve/neuron_max.sql");
    pub const NEURON_CONCEPT: &str = include_str!("../sql/serve/neuron_concept.sql");
    pub const COMPARE_NEURONS: &str = include_str!("../sql/serve/compare_neurons.sql");
    pub const COMPARE_CONCEPTS: &str = include_str!("../sql/serve/compare_concepts.sql");

    pub use super::literal::{Literal, fill};
}
