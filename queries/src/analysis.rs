//! Computes every derived table with DataFusion and writes it to `analyze/<name>.parquet`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::parquet_io::AtomicParquet;
use crate::session::{derived_path, register, require_table};
use crate::sql::{AnalysisParams, DERIVED_TABLES};
use crate::Result;

/// One derived table written.
#[derive(Debug, Clone)]
pub struct DerivedOutput {
    pub name: &'static str,
    pub rows: usize,
    pub seconds: f64,
}

/// Runs the SQL of one derived table and streams its result into Parquet.
pub async fn write_query(ctx: &SessionContext, sql: &str, path: &Path, metadata: &[(&str, String)]) -> Result<usize> {
    let df = ctx.sql(sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await?;
    let mut file = AtomicParquet::create(path, schema, metadata)?;
    while let Some(batch) = stream.next().await {
        file.write(&batch?)?;
    }
    file.finish()
}

/// Computes every derived table in dependency order, registering each as it is written so
/// later ones can read it. `on_table` is called before each table starts.
pub async fn run_analysis(
    ctx: &SessionContext,
    run_dir: &Path,
    params: &AnalysisParams,
    metadata: &[(&str, String)],
    on_table: &mut dyn FnMut(&str),
) -> Result<Vec<DerivedOutput>> {
    for table in ["tokens", "activations", "neurons"] {
        require_table(ctx, table)?;
    }
    let mut out = Vec::new();
    for table in DERIVED_TABLES {
        on_table(table.name);
        let started = Instant::now();
        let path = derived_path(run_dir, table.name);
        let rows = write_query(ctx, &params.render(table.sql), &path, metadata).await?;
        ctx.deregister_table(table.name)?;
        register(ctx, table.name, &path, false).await?;
        out.push(DerivedOutput {
            name: table.name,
            rows,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(out)
}
