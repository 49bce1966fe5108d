//! One DataFusion session over a run directory: recorded tables, derived tables and views.

use std::path::{Path, PathBuf};

use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

use crate::engine::Engine;
use crate::layout::RunLayout;
use crate::tables::partition_columns;
use crate::{Error, Result};

/// Settings of the session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Memory the query engine may use before spilling to disk (bytes; `None`: unbounded).
    pub memory_limit: Option<usize>,
    /// Partitions to run a query in (default: the number of cores).
    pub target_partitions: Option<usize>,
    /// In-process DataFusion, or a Ballista cluster.
    pub engine: Engine,
}

/// A session with every table that exists in `run_dir` registered, plus views:
/// `activations` (values as FLOAT, however stored), `activations_by_neuron` (the same, with
/// the files' order declared) and `latest_activations` (each model's last recorded step).
pub async fn open_run(run_dir: &Path, options: &SessionOptions) -> Result<SessionContext> {
    // DATAFUSION_* environment variables (e.g. DATAFUSION_EXECUTION_TARGET_PARTITIONS=4) tune
    // the engine without a rebuild; the settings below come on top.
    let mut config = SessionConfig::from_env()?.with_information_schema(true);
    // `ROW_NUMBER() ... <= n` as a per-partition top-n instead of a full sort of every
    // partition: top_contexts in 2/3 of the time (`pipeline bench analyze --on-run`). Not on
    // Ballista: its plan codec cannot send that operator to executors.
    if matches!(options.engine, Engine::DataFusion) {
        config.options_mut().optimizer.enable_window_topn = true;
    }
    if let Some(n) = options.target_partitions {
        config = config.with_target_partitions(n);
    }
    if matches!(options.engine, Engine::DataFusion) {
        keep_hive_partitions(&mut config);
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        runtime = runtime.with_memory_limit(limit, 1.0);
    }
    let ctx = crate::engine::context(&options.engine, config, runtime.build_arc()?).await?;
    let layout = RunLayout::new(run_dir);
    for (table, path, partitioned) in layout.tables() {
        if has_parquet(&path) {
            register(&ctx, table, &path, partitioned).await?;
        }
    }
    let derived = crate::sql::DERIVED_TABLES.iter().map(|t| t.name).chain([
        "matching",
        "stability",
        "entropy_intervals",
        "entropy_differences",
    ]);
    for name in derived {
        let path = derived_path(run_dir, name);
        if path.exists() {
            register(&ctx, name, &path, false).await?;
        }
    }
    if ctx.table_exist("activations_stored")? {
        let activations = layout.activations_dir();
        if matches!(options.engine, Engine::DataFusion) {
            register_in_neuron_order(&ctx, ACTIVATIONS_BY_NEURON, &activations).await?;
        } else {
            // Ballista 55's shuffle does not keep the order an order-preserving repartition
            // promises, so an aggregation planned as streaming would see a neuron's rows in
            // more than one run and emit it twice (token_entropy: 32,758 rows for 16,384 on
            // the generated 100 M-row lake). There the view reads the files without it.
            register(&ctx, ACTIVATIONS_BY_NEURON, &activations, true).await?;
        }
        for view in VIEWS {
            ctx.sql(view).await?;
        }
    }
    Ok(ctx)
}

/// Lets a query whose GROUP BY holds the Hive keys (model, step, layer) aggregate each
/// partition where it is read: files are grouped by partition into the session's partitions
/// (when there are at least as many Hive partitions as cores), and an aggregation keyed on a
/// superset of the Hive keys then runs in one phase, without the partial aggregation and
/// shuffle in between: token_entropy 2.7 → 1.9 s on the default lake (`pipeline bench
/// analyze --on-run`), rows identical. Not on Ballista, which plans its own stages.
/// `DATAFUSION_OPTIMIZER_PRESERVE_FILE_PARTITIONS=0` in the environment turns it off (to
/// compare).
fn keep_hive_partitions(config: &mut SessionConfig) {
    if std::env::var_os("DATAFUSION_OPTIMIZER_PRESERVE_FILE_PARTITIONS").is_some() {
        return;
    }
    let cores = config.target_partitions();
    let optimizer = &mut config.options_mut().optimizer;
    optimizer.preserve_file_partitions = cores;
    // Hash(model, step, layer) satisfies Hash(model, step, layer, neuron, …) once the data is
    // spread over every core anyway (the default, 4, would shuffle again on a 2-core machine).
    optimizer.subset_repartition_threshold = cores;
}

/// The views over `activations_stored`, in the order they are created.
pub const VIEWS: [&str; 3] = [
    include_str!("../sql/views/activations.sql"),
    include_str!("../sql/views/activations_by_neuron.sql"),
    include_str!("../sql/views/latest_activations.sql"),
];

/// Names of the views in [`VIEWS`] (the word after `CREATE VIEW`).
pub fn view_names() -> impl Iterator<Item = &'static str> {
    VIEWS.iter().filter_map(|sql| {
        let rest = &sql[sql.find("CREATE VIEW ")? + "CREATE VIEW ".len()..];
        rest.split_whitespace().next()
    })
}

/// The recorded activations registered a second time, under this name, with the order of
/// their rows declared (the view `activations_by_neuron` reads it).
pub const ACTIVATIONS_BY_NEURON: &str = "activations_stored_by_neuron";

/// The order of the rows in every activation file: the recorder sorts each file by neuron,
/// then token, and the Hive keys are constant in a file. Declared, it lets DataFusion stream
/// an aggregation per neuron; across the files of one stream DataFusion relies on it only
/// where their min/max statistics prove it (not where a partition was flushed in several
/// parts, whose neuron ranges overlap).
fn neuron_order() -> Vec<Vec<datafusion::logical_expr::SortExpr>> {
    let keys = ["model", "step", "layer", "neuron", "token_index"];
    vec![
        keys.iter()
            .map(|c| datafusion::prelude::col(*c).sort(true, false))
            .collect(),
    ]
}

/// Registers the Hive-partitioned activation folder with [`neuron_order`] declared.
async fn register_in_neuron_order(ctx: &SessionContext, table: &str, path: &Path) -> Result<()> {
    let options = ParquetReadOptions::default()
        .table_partition_cols(partition_columns())
        .file_sort_order(neuron_order());
    register_with(ctx, table, path, options).await
}

/// Registers one Parquet file or Hive-partitioned folder, by absolute path: on a cluster the
/// plan travels to executors whose working directory is not ours.
pub async fn register(
    ctx: &SessionContext,
    table: &str,
    path: &Path,
    partitioned: bool,
) -> Result<()> {
    let mut options = ParquetReadOptions::default();
    if partitioned {
        options = options.table_partition_cols(partition_columns());
    }
    register_with(ctx, table, path, options).await
}

/// Registers `path` by its `file://` URL with the read options given.
async fn register_with(
    ctx: &SessionContext,
    table: &str,
    path: &Path,
    options: ParquetReadOptions<'_>,
) -> Result<()> {
    let url = table_url(path)?;
    ctx.register_parquet(table, url.as_str(), options).await?;
    Ok(())
}

/// The `file://` URL of a table's file or folder. A plain path string would be read as a glob
/// (a run named `exp[1]` would match `exp1`), and `#`, `?` or `%` would end or escape it; the
/// URL percent-encodes them, and DataFusion takes a URL literally.
pub fn table_url(path: &Path) -> Result<url::Url> {
    let path = std::path::absolute(path).map_err(Error::io(path))?;
    let url = if path.is_dir() {
        url::Url::from_directory_path(&path)
    } else {
        url::Url::from_file_path(&path)
    };
    url.map_err(|()| Error::Io {
        path: path.clone(),
        source: std::io::Error::other("cannot be written as a file:// URL"),
    })
}

fn has_parquet(path: &Path) -> bool {
    if path.is_file() {
        return true;
    }
    fn walk(dir: &Path) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let p = e.path();
            if p.is_dir() {
                walk(&p)
            } else {
                p.extension().is_some_and(|x| x == "parquet")
            }
        })
    }
    walk(path)
}

/// Names of the tables and views registered in `ctx`, sorted.
pub fn table_names(ctx: &SessionContext) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .catalog("datafusion")
        .and_then(|c| c.schema("public"))
        .map(|s| s.table_names())
        .unwrap_or_default();
    names.sort();
    names
}

/// Fails with the list of tables that do exist when `table` is missing.
pub fn require_table(ctx: &SessionContext, table: &str) -> Result<()> {
    if ctx.table_exist(table)? {
        return Ok(());
    }
    Err(Error::MissingTable {
        table: table.to_owned(),
        available: table_names(ctx).join(", "),
    })
}

/// Path of a derived table's file.
pub fn derived_path(run_dir: &Path, name: &str) -> PathBuf {
    RunLayout::new(run_dir).derived(name)
}

/// Runs a query and returns its rows.
pub async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<arrow::array::RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn view_names_are_read_from_the_view_files() {
        let names: Vec<&str> = super::view_names().collect();
        assert_eq!(
            names,
            ["activations", "activations_by_neuron", "latest_activations"]
        );
    }
}
