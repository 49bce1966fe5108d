//! Computes every derived table with DataFusion and writes it to `analyze/<name>.parquet`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::Result;
use crate::parquet_io::AtomicParquet;
use crate::session::{derived_path, register, require_table};
use crate::sql::{AnalysisParams, DERIVED_TABLES};

/// One derived table written.
#[derive(Debug, Clone)]
pub struct DerivedOutput {
    pub name: &'static str,
    pub rows: usize,
    pub seconds: f64,
}

/// Runs several queries with the same result schema (the slices of one table) and streams
/// them, one after the other, into one Parquet file.
pub async fn write_sliced(
    ctx: &SessionContext,
    sqls: &[String],
    path: &Path,
    metadata: &[(&str, String)],
) -> Result<usize> {
    let mut file: Option<(AtomicParquet, SchemaRef)> = None;
    for sql in sqls {
        let df = ctx.sql(sql).await?;
        let (file, schema) = match &mut file {
            Some(f) => f,
            None => {
                let schema = plain_strings(df.schema().as_arrow());
                let f = AtomicParquet::create(path, schema.clone(), metadata)?;
                file.insert((f, schema))
            }
        };
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            let columns = batch
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            file.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        }
    }
    match file {
        Some((f, _)) => f.finish(),
        None => Ok(0),
    }
}

/// `schema` with every string column as plain `Utf8`: the engine hands out string views (the
/// model partition column, text read from Parquet) and large strings (`STRING_AGG`), and a
/// derived table should read back the same in any tool (pyarrow cannot sort string views).
fn plain_strings(schema: &Schema) -> SchemaRef {
    let fields = schema.fields().iter().map(|f| match f.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 => {
            Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
        }
        _ => f.clone(),
    });
    Arc::new(Schema::new_with_metadata(
        fields.collect::<Vec<_>>(),
        schema.metadata().clone(),
    ))
}

/// The `{{slice}}` predicates of a table: one per distinct combination of `columns` in
/// `neurons`, or `TRUE` (one slice) when it is not sliced.
async fn slices(ctx: &SessionContext, columns: &[&str]) -> Result<Vec<String>> {
    if columns.is_empty() {
        return Ok(vec!["TRUE".to_owned()]);
    }
    let sql = format!(
        "SELECT DISTINCT {cols} FROM neurons ORDER BY {cols}",
        cols = columns.join(", ")
    );
    let batches = crate::session::collect(ctx, &sql).await?;
    let values: Vec<Vec<String>> = columns
        .iter()
        .map(|c| crate::tables::columns::text(&batches, c))
        .collect::<Result<_>>()?;
    let n = values.first().map_or(0, |v| v.len());
    Ok((0..n)
        .map(|i| {
            let terms: Vec<String> = columns
                .iter()
                .zip(&values)
                .map(|(c, v)| {
                    if *c == "model" {
                        format!("{c} = '{}'", v[i].replace('\'', "''"))
                    } else {
                        format!("{c} = {}", v[i])
                    }
                })
                .collect();
            terms.join(" AND ")
        })
        .collect())
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
        let sql = params.render(table.sql);
        let sqls: Vec<String> = slices(ctx, table.slice_by)
            .await?
            .iter()
            .map(|p| sql.replace("{{slice}}", p))
            .collect();
        let rows = write_sliced(ctx, &sqls, &path, metadata).await?;
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
