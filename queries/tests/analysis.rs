//! The derived tables on a hand-built run: known activations, hand-computed answers.

mod common;

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::datatypes::Float64Type;
use queries::parquet_io::write_parquet;
use queries::session::{SessionOptions, collect, derived_path, open_run};
use queries::sql::AnalysisParams;
use queries::tables::activations::{self, ActivationRow};
use queries::tables::columns::{required, text};
use queries::tables::neurons::{self, NeuronRow};
use queries::tables::tokens::{self, TokenRow};

/// A result column as f64 (no nulls expected).
fn column_f64(batches: &[RecordBatch], name: &str) -> queries::Result<Vec<f64>> {
    required::<Float64Type>(batches, name)
}

/// The SQL of the derived table `name`, placeholders unfilled.
fn derived_sql(name: &str) -> &'static str {
    queries::sql::DERIVED_TABLES
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no derived table {name}"))
        .sql
}

/// A result column as text (no nulls expected).
fn column_str(batches: &[RecordBatch], name: &str) -> queries::Result<Vec<String>> {
    text(batches, name)
}

/// Six tokens; token ids 10, 11, 10, 12, 13, 10; concepts: food, food, food, animal, none, food.
fn write_tokens(run: &Path) {
    let ids = [10, 11, 10, 12, 13, 10];
    let texts = ["a", " b", "a", " c", " d", "a"];
    let words = [Some("a"), Some("b"), Some("a"), Some("c"), None, Some("a")];
    let concepts = [
        Some("noun.food"),
        Some("noun.food"),
        Some("noun.food"),
        Some("noun.animal"),
        None,
        Some("noun.food"),
    ];
    let concept_ids = [Some(1), Some(1), Some(1), Some(2), None, Some(1)];
    let rows: Vec<TokenRow> = (0..6)
        .map(|i| TokenRow {
            token_index: i as u32,
            doc_id: 0,
            position: i as u32,
            token_id: ids[i],
            token_text: texts[i].into(),
            word_index: i as u32,
            word: words[i].map(String::from),
            concept: concepts[i].map(String::from),
            concept_id: concept_ids[i],
        })
        .collect();
    write_token_table(run, &rows);
}

fn write_token_table(run: &Path, rows: &[TokenRow]) {
    write_parquet(
        &run.join("prepare/tokens.parquet"),
        tokens::schema(),
        &[tokens::encode(rows).unwrap()],
        &[],
    )
    .unwrap();
}

/// One partition of activations: (token, neuron, value) rows.
fn write_acts(run: &Path, model: &str, step: u32, layer: u16, rows: &[(u32, u16, f32)], d: u16) {
    let dir = run.join(format!(
        "record/activations/model={model}/step={step}/layer={layer}"
    ));
    let rows: Vec<ActivationRow> = rows
        .iter()
        .map(|&(token_index, neuron, value)| ActivationRow {
            neuron,
            token_index,
            value,
        })
        .collect();
    write_parquet(
        &dir.join("part-0000.parquet"),
        activations::schema(),
        &[activations::encode(&rows, false, false).unwrap()],
        &[],
    )
    .unwrap();
    let neuron_rows: Vec<NeuronRow> = (0..d)
        .map(|neuron| NeuronRow {
            neuron,
            read_norm: 1.0,
            write_norm: 1.0,
            top_promoted: "x".into(),
            top_suppressed: "y".into(),
            read_cos_prev: None,
            write_cos_prev: Some(0.5),
        })
        .collect();
    let ndir = run.join(format!(
        "record/neurons/model={model}/step={step}/layer={layer}"
    ));
    write_parquet(
        &ndir.join("part-0000.parquet"),
        neurons::schema(),
        &[neurons::encode(&neuron_rows).unwrap()],
        &[],
    )
    .unwrap();
}

fn rows_of(batches: &[RecordBatch], cols: &[&str]) -> Vec<Vec<String>> {
    let columns: Vec<Vec<String>> = cols
        .iter()
        .map(|c| column_str(batches, c).unwrap())
        .collect();
    (0..columns[0].len())
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect()
}

#[tokio::test]
async fn entropies_frequencies_and_lineage_match_hand_computation() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    write_tokens(run);
    // Step 0: neuron 0 fires on tokens 0,1,2 with weights 1,1,2 (token ids 10,11,10);
    //         neuron 1 fires on tokens 3,4 with weight 1 each; neuron 2 never fires.
    write_acts(
        run,
        "m",
        0,
        0,
        &[
            (0, 0, 1.0),
            (1, 0, 1.0),
            (2, 0, 2.0),
            (3, 1, 1.0),
            (4, 1, 1.0),
        ],
        3,
    );
    // Step 5: neurons 0 and 1 swap roles (a known permutation); neuron 2 is born on token 5.
    write_acts(
        run,
        "m",
        5,
        0,
        &[
            (0, 1, 1.0),
            (1, 1, 1.0),
            (2, 1, 2.0),
            (3, 0, 1.0),
            (4, 0, 1.0),
            (5, 2, 3.0),
        ],
        3,
    );

    let ctx = open_run(run, &SessionOptions::default()).await.unwrap();
    let params = AnalysisParams {
        min_count: 1,
        ..Default::default()
    };
    queries::analysis::run_analysis(&ctx, run, &params, &[], &mut |_| {})
        .await
        .unwrap();

    // neuron_stats: frequency = active tokens / 6; neuron 2 dead at step 0.
    let b = collect(
        &ctx,
        "SELECT neuron, n_active, frequency, dead FROM neuron_stats WHERE step = 0 ORDER BY neuron",
    )
    .await
    .unwrap();
    assert_eq!(column_f64(&b, "n_active").unwrap(), vec![3.0, 2.0, 0.0]);
    assert_eq!(
        column_f64(&b, "frequency").unwrap(),
        vec![0.5, 2.0 / 6.0, 0.0]
    );
    assert_eq!(
        column_str(&b, "dead").unwrap(),
        vec!["false", "false", "true"]
    );

    // Token entropy of neuron 0 at step 0: token 10 has weight 1 + 2 = 3, token 11 weight 1:
    // H = -(3/4 log2 3/4 + 1/4 log2 1/4) = 0.811278 bits; 2 categories, so normalised the same.
    let b = collect(&ctx, "SELECT entropy_bits, entropy_norm, n_categories, top_token_id, top_share FROM token_entropy WHERE step = 0 AND neuron = 0").await.unwrap();
    let h = -(0.75f64 * 0.75f64.log2() + 0.25 * 0.25f64.log2());
    assert!((column_f64(&b, "entropy_bits").unwrap()[0] - h).abs() < 1e-6);
    assert!((column_f64(&b, "entropy_norm").unwrap()[0] - h).abs() < 1e-6);
    assert_eq!(column_f64(&b, "top_token_id").unwrap(), vec![10.0]);
    assert_eq!(column_f64(&b, "top_share").unwrap(), vec![0.75]);

    // Semantic entropy: neuron 0 sees only food → 0 bits, top concept food, share 1;
    // neuron 1 sees animal (token 3) and a token without concept (left out) → 0 bits, animal.
    let b = collect(&ctx, "SELECT neuron, entropy_bits, top_concept, top_share, n_obs FROM semantic_entropy WHERE step = 0 ORDER BY neuron").await.unwrap();
    assert_eq!(
        rows_of(
            &b,
            &[
                "neuron",
                "entropy_bits",
                "top_concept",
                "top_share",
                "n_obs"
            ]
        ),
        vec![
            vec!["0", "0.0", "noun.food", "1.0", "3"],
            vec!["1", "0.0", "noun.animal", "1.0", "1"],
        ]
    );

    // The weight side of lineage comes from `neurons` (write_cos_prev is 0.5 in the fixture).
    let b = collect(&ctx, "SELECT write_cos FROM lineage ORDER BY neuron")
        .await
        .unwrap();
    assert_eq!(column_f64(&b, "write_cos").unwrap(), vec![0.5, 0.5, 0.5]);

    // Lineage from step 0 to 5: neurons 0 and 1 swapped, so by index their activation vectors
    // are orthogonal (cosine 0, Jaccard 0) → drift; neuron 2 is born.
    let b = collect(
        &ctx,
        "SELECT neuron, cosine, jaccard, event FROM lineage ORDER BY neuron",
    )
    .await
    .unwrap();
    assert_eq!(
        rows_of(&b, &["neuron", "cosine", "jaccard", "event"]),
        vec![
            vec!["0", "0.0", "0.0", "drift"],
            vec!["1", "0.0", "0.0", "drift"],
            vec!["2", "0.0", "0.0", "birth"],
        ]
    );

    // The optimal matching between the two checkpoints recovers the swap of neurons 0 and 1.
    queries::stability::write_stability(&ctx, run, &params, &[], &[], &mut |_, _, _| {})
        .await
        .unwrap();
    let b = collect(
        &ctx,
        "SELECT neuron_prev, neuron, cosine FROM matching ORDER BY neuron_prev",
    )
    .await
    .unwrap();
    assert_eq!(column_f64(&b, "neuron").unwrap(), vec![1.0, 0.0, 2.0]);
    let cos = column_f64(&b, "cosine").unwrap();
    assert!((cos[0] - 1.0).abs() < 1e-6 && (cos[1] - 1.0).abs() < 1e-6);

    // Stability: of the 2 neurons alive at step 0, none keeps its index (cosine 0 by index),
    // both survive under the matching (cosine 1 ≥ 0.7).
    let b = collect(
        &ctx,
        "SELECT method, n_alive, n_stable, share_stable FROM stability ORDER BY method",
    )
    .await
    .unwrap();
    assert_eq!(
        rows_of(&b, &["method", "n_alive", "n_stable", "share_stable"]),
        vec![
            vec!["index", "2", "0", "0.0"],
            vec!["matched", "2", "2", "1.0"]
        ]
    );

    // Top contexts at the last step: neuron 1's strongest token is token 2 (value 2).
    let b = collect(&ctx, "SELECT token_index, left_context, token_text FROM top_contexts WHERE neuron = 1 AND rank = 1").await.unwrap();
    assert_eq!(
        rows_of(&b, &["token_index", "left_context", "token_text"]),
        vec![vec!["2", "a b", "a"]]
    );
}

#[tokio::test]
async fn unchanged_neurons_are_stable_and_cross_layer_identity_is_measured() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    write_tokens(run);
    let rows = [(0, 0, 1.0), (1, 0, 2.0), (3, 1, 1.5)];
    write_acts(run, "m", 0, 0, &rows, 2);
    write_acts(run, "m", 1, 0, &rows, 2);
    // Layer 1 at step 1: neuron 0 on the same tokens with doubled values (cosine 1),
    // neuron 1 on a different token (cosine 0).
    write_acts(run, "m", 1, 1, &[(0, 0, 2.0), (1, 0, 4.0), (4, 1, 1.0)], 2);
    let ctx = open_run(run, &SessionOptions::default()).await.unwrap();
    queries::analysis::run_analysis(
        &ctx,
        run,
        &AnalysisParams {
            min_count: 1,
            ..Default::default()
        },
        &[],
        &mut |_| {},
    )
    .await
    .unwrap();
    let b = collect(
        &ctx,
        "SELECT neuron, cosine, event FROM lineage WHERE layer = 0 ORDER BY neuron",
    )
    .await
    .unwrap();
    let cos = column_f64(&b, "cosine").unwrap();
    assert!((cos[0] - 1.0).abs() < 1e-9 && (cos[1] - 1.0).abs() < 1e-9);
    assert_eq!(column_str(&b, "event").unwrap(), vec!["stable", "stable"]);
    let b = collect(
        &ctx,
        "SELECT neuron, cosine, jaccard FROM cross_layer WHERE step = 1 ORDER BY neuron",
    )
    .await
    .unwrap();
    let (cos, jac) = (
        column_f64(&b, "cosine").unwrap(),
        column_f64(&b, "jaccard").unwrap(),
    );
    assert!((cos[0] - 1.0).abs() < 1e-9 && (jac[0] - 1.0).abs() < 1e-9);
    assert_eq!((cos[1], jac[1]), (0.0, 0.0));
}

/// The layer summary's quartiles are exact, and the same however the engine splits the work:
/// computed here from the `token_entropy` rows, on a generated lake with 512 neurons a layer
/// (more than an approximate digest keeps exactly), under 1 and 4 target partitions.
#[tokio::test]
async fn layer_summary_quartiles_are_exact_and_do_not_depend_on_partitioning() {
    let mut summaries = Vec::new();
    for partitions in [1, 4] {
        let dir = tempfile::tempdir().unwrap();
        let spec = queries::synthetic::LakeSpec {
            rows: 400_000,
            k: 32,
            d: 512,
            layers: 1,
            steps: 2,
            models: vec!["m".into()],
            seed: 5,
        };
        queries::synthetic::write_lake(dir.path(), &spec).unwrap();
        let options = SessionOptions {
            target_partitions: Some(partitions),
            ..Default::default()
        };
        let ctx = open_run(dir.path(), &options).await.unwrap();
        queries::analysis::run_analysis(
            &ctx,
            dir.path(),
            &AnalysisParams::default(),
            &[],
            &mut |_| {},
        )
        .await
        .unwrap();
        let b = collect(
            &ctx,
            "SELECT entropy_norm FROM token_entropy WHERE NOT low_count AND step = 1 ORDER BY entropy_norm",
        )
        .await
        .unwrap();
        let sorted = column_f64(&b, "entropy_norm").unwrap();
        assert!(
            sorted.len() > 300,
            "{} neurons with enough observations",
            sorted.len()
        );
        // Linear interpolation between the closest ranks, as PERCENTILE_CONT defines it.
        let exact = |p: f64| {
            let pos = p * (sorted.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        };
        let b = collect(
            &ctx,
            "SELECT token_entropy_q1, token_entropy_median, token_entropy_q3 FROM layer_summary WHERE step = 1",
        )
        .await
        .unwrap();
        let got: Vec<f64> = [
            "token_entropy_q1",
            "token_entropy_median",
            "token_entropy_q3",
        ]
        .iter()
        .map(|c| column_f64(&b, c).unwrap()[0])
        .collect();
        for (g, p) in got.iter().zip([0.25, 0.5, 0.75]) {
            assert!(
                (g - exact(p)).abs() < 1e-12,
                "quantile {p}: {g} vs {}",
                exact(p)
            );
        }
        let all = collect(&ctx, "SELECT * FROM layer_summary ORDER BY step")
            .await
            .unwrap();
        let columns = [
            "token_entropy_q1",
            "token_entropy_median",
            "token_entropy_q3",
            "semantic_entropy_q1",
            "semantic_entropy_median",
            "semantic_entropy_q3",
        ];
        summaries.push(
            columns
                .iter()
                .flat_map(|c| column_f64(&all, c).unwrap())
                .collect::<Vec<f64>>(),
        );
    }
    // Equal up to the last bits of the entropies' own sums (summed in another order when the
    // work is split); the approximate digest differed in the fourth decimal.
    assert_eq!(summaries[0].len(), summaries[1].len());
    for (a, b) in summaries[0].iter().zip(&summaries[1]) {
        assert!((a - b).abs() <= 1e-12 * a.abs(), "{a} vs {b}");
    }
}

/// Contexts end at word boundaries: a window of two tokens before and one after the top token
/// lands inside "blackbird" and "loudly"; the context holds both words whole.
#[tokio::test]
async fn top_contexts_are_widened_to_whole_words() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path();
    let texts = ["The", " bl", "ack", "bird", " sang", " lo", "ud", "ly", "."];
    let words = [0, 1, 1, 1, 2, 3, 3, 3, 4];
    let rows: Vec<TokenRow> = (0..texts.len())
        .map(|i| TokenRow {
            token_index: i as u32,
            doc_id: 0,
            position: i as u32,
            token_id: i as u32,
            token_text: texts[i].into(),
            word_index: words[i],
            word: None,
            concept: None,
            concept_id: None,
        })
        .collect();
    write_token_table(run, &rows);
    write_acts(run, "m", 0, 0, &[(4, 0, 2.0), (0, 0, 1.0)], 1);
    let ctx = open_run(run, &SessionOptions::default()).await.unwrap();
    let params = AnalysisParams {
        min_count: 1,
        context_before: 2,
        context_after: 1,
        ..Default::default()
    };
    queries::analysis::run_analysis(&ctx, run, &params, &[], &mut |_| {})
        .await
        .unwrap();
    let b = collect(
        &ctx,
        "SELECT rank, left_context, token_text, right_context FROM top_contexts ORDER BY rank",
    )
    .await
    .unwrap();
    assert_eq!(
        rows_of(&b, &["rank", "left_context", "token_text", "right_context"]),
        vec![
            vec!["1", " blackbird", " sang", " loudly"],
            // At the start of the document: nothing before, the window's words after.
            vec!["2", "", "The", " blackbird"],
        ]
    );
}

/// The session aggregates each Hive partition in one phase where a GROUP BY holds the
/// partition keys (no shuffle between a partial and a final aggregation), and every derived
/// table has the rows the default two-phase plans give.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_wise_aggregation_gives_the_tables_of_the_default_plans() {
    let spec = queries::synthetic::LakeSpec {
        rows: 8 * 2 * 3 * 2 * 300,
        k: 8,
        d: 32,
        layers: 2,
        steps: 3,
        models: vec!["topk".into(), "dense".into()],
        seed: 11,
    };
    let (ours, plain) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    queries::synthetic::write_lake(ours.path(), &spec).unwrap();
    queries::synthetic::write_lake(plain.path(), &spec).unwrap();
    let params = AnalysisParams::default();

    let options = SessionOptions {
        target_partitions: Some(2),
        ..Default::default()
    };
    let ctx = open_run(ours.path(), &options).await.unwrap();
    let plan = collect(
        &ctx,
        &format!("EXPLAIN {}", params.render(derived_sql("token_entropy"))),
    )
    .await
    .unwrap();
    let plan = text(&plan, "plan").unwrap().join("\n");
    assert!(plan.contains("mode=SinglePartitioned"), "{plan}");
    assert!(!plan.contains("AggregateExec: mode=Partial"), "{plan}");
    queries::analysis::run_analysis(&ctx, ours.path(), &params, &[], &mut |_| {})
        .await
        .unwrap();

    // The same tables and views in a session with DataFusion's defaults.
    let ctx = default_session(plain.path()).await;
    let plan = collect(
        &ctx,
        &format!("EXPLAIN {}", params.render(derived_sql("token_entropy"))),
    )
    .await
    .unwrap();
    assert!(
        text(&plan, "plan")
            .unwrap()
            .join("\n")
            .contains("AggregateExec: mode=Partial"),
        "the default plan aggregates in two phases"
    );
    queries::analysis::run_analysis(&ctx, plain.path(), &params, &[], &mut |_| {})
        .await
        .unwrap();

    for table in queries::sql::DERIVED_TABLES {
        common::assert_same_table(ours.path(), plain.path(), table.name).await;
        // Strings are written as plain Utf8 whatever the engine handed out (string views for
        // the model, large strings from STRING_AGG), so any Parquet reader gets one type.
        let file = std::fs::File::open(derived_path(ours.path(), table.name)).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        for field in reader.schema().fields() {
            assert!(
                !matches!(
                    field.data_type(),
                    arrow::datatypes::DataType::Utf8View | arrow::datatypes::DataType::LargeUtf8
                ),
                "{}.{} is {}",
                table.name,
                field.name(),
                field.data_type()
            );
        }
    }
}

/// A session over `run` with DataFusion's default settings and no declared file order: the
/// plans to compare the project's session with.
async fn default_session(run: &Path) -> datafusion::prelude::SessionContext {
    let config = datafusion::prelude::SessionConfig::new().with_target_partitions(2);
    let ctx = datafusion::prelude::SessionContext::new_with_config(config);
    let layout = queries::layout::RunLayout::new(run);
    for (table, path, partitioned) in layout.tables() {
        if path.exists() {
            queries::session::register(&ctx, table, &path, partitioned)
                .await
                .unwrap();
        }
    }
    // The activations once more under the name `activations_by_neuron` reads, without the
    // declared order: DataFusion's plain hash aggregations to compare the streamed ones with.
    queries::session::register(
        &ctx,
        queries::session::ACTIVATIONS_BY_NEURON,
        &layout.activations_dir(),
        true,
    )
    .await
    .unwrap();
    for view in queries::session::VIEWS {
        ctx.sql(view).await.unwrap();
    }
    ctx
}

/// `activations_by_neuron` declares the order the recorder writes each file in. DataFusion
/// streams token_entropy's and neuron_stats' aggregations on it where the files' statistics
/// prove that order across the files of a stream (checkpoints 0–11, whose folder names do not
/// sort as numbers), reads without it where they cannot (a partition flushed in two parts,
/// whose neuron ranges overlap), and the rows equal plain hash aggregations either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_neuron_order_streams_only_where_the_files_prove_it() {
    let spec = queries::synthetic::LakeSpec {
        rows: 6 * 2 * 12 * 120,
        k: 6,
        d: 24,
        layers: 2,
        steps: 12,
        models: vec!["topk".into()],
        seed: 5,
    };
    let run = tempfile::tempdir().unwrap();
    queries::synthetic::write_lake(run.path(), &spec).unwrap();
    assert_streamed_rows_equal_hashed(run.path(), 2, Some(true)).await;

    let partition = run
        .path()
        .join("record/activations/model=topk/step=3/layer=1");
    split_in_two_parts(&partition);
    assert_streamed_rows_equal_hashed(run.path(), 2, Some(false)).await;
}

/// Checks whether token_entropy and neuron_stats stream on `run` in a session of `partitions`
/// partitions (`streams`; `None`: either), and that their rows equal those of
/// [`default_session`].
async fn assert_streamed_rows_equal_hashed(
    run: &Path,
    partitions: usize,
    streams: Option<bool>,
) -> Vec<String> {
    let params = AnalysisParams::default();
    let options = SessionOptions {
        target_partitions: Some(partitions),
        ..Default::default()
    };
    let ordered = open_run(run, &options).await.unwrap();
    let plain = default_session(run).await;
    let mut plans = Vec::new();
    for name in ["token_entropy", "neuron_stats"] {
        let sql = params.render(derived_sql(name));
        let plan = collect(&ordered, &format!("EXPLAIN {sql}")).await.unwrap();
        let plan = text(&plan, "plan").unwrap().join("\n");
        if let Some(streams) = streams {
            assert_eq!(plan.contains("ordering_mode="), streams, "{name}: {plan}");
        }
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (ctx, dir) in [(&ordered, &a), (&plain, &b)] {
            let path = derived_path(dir.path(), name);
            queries::analysis::write_sliced(ctx, std::slice::from_ref(&sql), &path, &[])
                .await
                .unwrap();
        }
        common::assert_same_table(a.path(), b.path(), name).await;
        plans.push(plan);
    }
    plans
}

/// Rewrites a partition's one file as two, split by token as the recorder flushes a full
/// buffer: each part sorted by neuron then token, their neuron ranges overlapping.
fn split_in_two_parts(partition: &Path) {
    let path = partition.join("part-0000.parquet");
    let file = std::fs::File::open(&path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let tokens = all
        .column_by_name("token_index")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::UInt32Array>()
        .unwrap();
    let middle = tokens.values().iter().max().unwrap().div_ceil(2);
    let first: arrow::array::BooleanArray = tokens.iter().map(|t| t.map(|t| t < middle)).collect();
    let second = arrow::compute::not(&first).unwrap();
    for (part, keep) in [(0, &first), (1, &second)] {
        let rows = arrow::compute::filter_record_batch(&all, keep).unwrap();
        assert!(rows.num_rows() > 0);
        write_parquet(
            &partition.join(format!("part-{part:04}.parquet")),
            rows.schema(),
            &[rows],
            &[],
        )
        .unwrap();
    }
}

/// Where the session has more partitions than the lake has Hive partitions, files are not
/// grouped by partition (no one-phase aggregation) and may be read in byte ranges by several
/// partitions, whose streams are merged in order; the declared order must still give the rows
/// of plain hash aggregation. The benchmark's lake shape at 8 partitions, then one checkpoint
/// of 2 layers whose two files (over DataFusion's 10 MiB `repartition_file_min_size`) are read
/// as byte ranges by 8 partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_neuron_order_holds_with_more_partitions_than_the_lake() {
    use queries::synthetic::{LakeSpec, write_lake};
    let wide = tempfile::tempdir().unwrap();
    write_lake(wide.path(), &LakeSpec::with_rows(200_000)).unwrap();
    assert_streamed_rows_equal_hashed(wide.path(), 8, None).await;

    let narrow = tempfile::tempdir().unwrap();
    let spec = LakeSpec {
        layers: 2,
        steps: 1,
        models: vec!["topk".into()],
        ..LakeSpec::with_rows(13_000_000)
    };
    write_lake(narrow.path(), &spec).unwrap();
    let plans = assert_streamed_rows_equal_hashed(narrow.path(), 8, Some(true)).await;
    assert!(
        plans[0].contains("part-0000.parquet:0..") && plans[0].contains("preserve_order=true"),
        "the files are not read in byte ranges merged in order: {}",
        plans[0]
    );
}

/// One `semantic_entropy` row, as `formation` reads it.
struct Checkpoint {
    model: &'static str,
    step: u32,
    layer: u16,
    neuron: u16,
    entropy_norm: f64,
    low_count: bool,
    concept_id: u16,
}

/// `formation` by its definition, one neuron at a time: each model's last step is the largest
/// it has rows at; a neuron with a row there forms at the earliest step from which every one
/// of its rows is sharp (normalised entropy below `threshold`, enough observations) and has
/// the concept of its row at the last step; never, if that row itself is not sharp.
fn formation_by_definition(
    rows: &[Checkpoint],
    threshold: f64,
) -> std::collections::BTreeMap<(String, u16, u16), Option<u32>> {
    let mut last = std::collections::BTreeMap::<&str, u32>::new();
    for r in rows {
        let s = last.entry(r.model).or_default();
        *s = (*s).max(r.step);
    }
    let mut out = std::collections::BTreeMap::new();
    for f in rows.iter().filter(|r| r.step == last[r.model]) {
        let mut history: Vec<&Checkpoint> = rows
            .iter()
            .filter(|r| (r.model, r.layer, r.neuron) == (f.model, f.layer, f.neuron))
            .collect();
        history.sort_by_key(|r| std::cmp::Reverse(r.step));
        let ok = |r: &Checkpoint| {
            r.entropy_norm < threshold && !r.low_count && r.concept_id == f.concept_id
        };
        let formed = history.iter().take_while(|r| ok(r)).last().map(|r| r.step);
        out.insert((f.model.to_owned(), f.layer, f.neuron), formed);
    }
    out
}

/// `formation` equals its definition on hand-picked histories (formed after a blurred, a
/// low-count and an other-concept checkpoint; never formed; sharp throughout; absent at the
/// last step; a gap in its checkpoints; two models with different last steps) and on 300
/// generated ones.
#[tokio::test]
async fn formation_is_the_start_of_each_neurons_last_sharp_run() {
    use arrow::array::{BooleanArray, Float64Array, StringArray, UInt16Array, UInt32Array};
    let c = |model, step, neuron, entropy_norm, low_count, concept_id| Checkpoint {
        model,
        step,
        layer: 0,
        neuron,
        entropy_norm,
        low_count,
        concept_id,
    };
    let mut rows = vec![
        // Formed at 20: blurred at 10.
        c("a", 0, 0, 0.2, false, 1),
        c("a", 10, 0, 0.9, false, 1),
        c("a", 20, 0, 0.3, false, 1),
        c("a", 30, 0, 0.1, false, 1),
        // Formed at 30: too few observations at 20.
        c("a", 10, 1, 0.1, false, 2),
        c("a", 20, 1, 0.1, true, 2),
        c("a", 30, 1, 0.1, false, 2),
        // Formed at 20: another concept at 10.
        c("a", 10, 2, 0.1, false, 3),
        c("a", 20, 2, 0.1, false, 4),
        c("a", 30, 2, 0.1, false, 4),
        // Never: blurred at the last step.
        c("a", 20, 3, 0.1, false, 1),
        c("a", 30, 3, 0.7, false, 1),
        // Sharp throughout, with a gap at 10 and 20: formed at 0.
        c("a", 0, 4, 0.4, false, 5),
        c("a", 30, 4, 0.2, false, 5),
        // Absent at the last step: no row.
        c("a", 0, 5, 0.1, false, 1),
        c("a", 20, 5, 0.1, false, 1),
        // Model b ends at 20.
        c("b", 10, 0, 0.1, false, 1),
        c("b", 20, 0, 0.2, false, 1),
    ];
    let threshold = AnalysisParams::default().formation_entropy;
    let hand: Vec<((String, u16, u16), Option<u32>)> = [
        ("a", 0, Some(20)),
        ("a", 1, Some(30)),
        ("a", 2, Some(20)),
        ("a", 3, None),
        ("a", 4, Some(0)),
        ("b", 0, Some(10)),
    ]
    .into_iter()
    .map(|(m, n, s)| ((m.to_owned(), 0, n), s))
    .collect();
    assert_eq!(
        formation_by_definition(&rows, threshold)
            .into_iter()
            .collect::<Vec<_>>(),
        hand,
        "the reference implementation disagrees with the hand-worked cases"
    );
    // Generated histories: 300 neurons in two layers of model "g", random gaps, entropies,
    // counts and concepts (a fixed xorshift, so the test is the same every run).
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for neuron in 0..300u16 {
        for step in (0..8u32).map(|s| s * 100) {
            if next(5) == 0 && step != 700 {
                continue;
            }
            rows.push(Checkpoint {
                model: "g",
                step,
                layer: neuron % 2,
                neuron,
                entropy_norm: next(100) as f64 / 100.0,
                low_count: next(8) == 0,
                concept_id: 1 + next(3) as u16,
            });
        }
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("model", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("step", arrow::datatypes::DataType::UInt32, false),
        arrow::datatypes::Field::new("layer", arrow::datatypes::DataType::UInt16, false),
        arrow::datatypes::Field::new("neuron", arrow::datatypes::DataType::UInt16, false),
        arrow::datatypes::Field::new("entropy_norm", arrow::datatypes::DataType::Float64, true),
        arrow::datatypes::Field::new("low_count", arrow::datatypes::DataType::Boolean, true),
        arrow::datatypes::Field::new("top_concept_id", arrow::datatypes::DataType::UInt16, true),
        arrow::datatypes::Field::new("top_concept", arrow::datatypes::DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.model))),
            std::sync::Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.step))),
            std::sync::Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.layer))),
            std::sync::Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.neuron))),
            std::sync::Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.entropy_norm),
            )),
            std::sync::Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.low_count)),
            )),
            std::sync::Arc::new(UInt16Array::from_iter_values(
                rows.iter().map(|r| r.concept_id),
            )),
            std::sync::Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("concept {}", r.concept_id)),
            )),
        ],
    )
    .unwrap();
    // Split in three batches over two partitions, so the engine's joins and aggregations
    // see each neuron's rows apart.
    let third = batch.num_rows() / 3;
    let parts = vec![
        vec![
            batch.slice(0, third),
            batch.slice(2 * third, batch.num_rows() - 2 * third),
        ],
        vec![batch.slice(third, third)],
    ];
    let ctx = datafusion::prelude::SessionContext::new_with_config(
        datafusion::prelude::SessionConfig::new().with_target_partitions(2),
    );
    ctx.register_table(
        "semantic_entropy",
        std::sync::Arc::new(datafusion::datasource::MemTable::try_new(schema, parts).unwrap()),
    )
    .unwrap();
    let b = collect(
        &ctx,
        &AnalysisParams::default().render(derived_sql("formation")),
    )
    .await
    .unwrap();
    let models = column_str(&b, "model").unwrap();
    let layers = required::<arrow::datatypes::UInt16Type>(&b, "layer").unwrap();
    let neurons = required::<arrow::datatypes::UInt16Type>(&b, "neuron").unwrap();
    let steps =
        queries::tables::columns::optional::<arrow::datatypes::UInt32Type>(&b, "formation_step")
            .unwrap();
    let got: std::collections::BTreeMap<_, _> = (0..models.len())
        .map(|i| ((models[i].clone(), layers[i], neurons[i]), steps[i]))
        .collect();
    assert_eq!(got.len(), models.len(), "one row per neuron");
    let expected = formation_by_definition(&rows, threshold);
    assert!(expected.len() > 300, "{} neurons", expected.len());
    assert!(
        expected.values().filter(|s| s.is_some()).count() > 30
            && expected.values().filter(|s| s.is_none()).count() > 30,
        "the generated histories have both formed and unformed neurons"
    );
    assert_eq!(got, expected);
}
