//! Computes every derived table with DataFusion and writes it to `analyze/<name>.parquet`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

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
    let mut file: Option<AtomicParquet> = None;
    for sql in sqls {
        let df = ctx.sql(sql).await?;
        let file = match &mut file {
            Some(f) => f,
            None => file.insert(AtomicParquet::create(
                path,
                Arc::new(df.schema().as_arrow().clone()),
                metadata,
            )?),
        };
        let mut stream = df.execute_stream().await?;
        while let Some(batch) = stream.next().await {
            file.write(&batch?)?;
        }
    }
    match file {
        Some(f) => f.finish(),
        None => Ok(0),
    }
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
        .map(|c| crate::session::column_str(&batches, c))
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

/// The optimal matching between each model's last two checkpoints, per layer, written to
/// `analyze/matching.parquet` (model, layer, step_prev, step, neuron_prev, neuron, cosine,
/// same_index). Only the last pair: the pairwise similarity join costs k² rows per token.
pub async fn write_matching(
    ctx: &SessionContext,
    run_dir: &Path,
    d_model: usize,
    metadata: &[(&str, String)],
) -> Result<usize> {
    use arrow::array::{
        BooleanArray, Float64Array, RecordBatch, StringArray, UInt16Array, UInt32Array,
    };
    use arrow::datatypes::{DataType, Field, Schema};

    use crate::matching::{dense_matrix, optimal_matching};
    use crate::session::{collect, column_f64, column_str};

    let steps = collect(ctx, "SELECT model, step FROM (SELECT DISTINCT model, step FROM neuron_stats) ORDER BY model, step").await?;
    let (models, step_col) = (column_str(&steps, "model")?, column_f64(&steps, "step")?);
    let mut by_model: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
    for (m, s) in models.iter().zip(&step_col) {
        by_model.entry(m.clone()).or_default().push(*s as u32);
    }
    let (mut model, mut layer, mut step_prev, mut step, mut n_prev, mut n_next, mut cosine) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for (m, steps) in &by_model {
        let [.., a, b] = steps[..] else { continue };
        let sql = include_str!("../sql/pair_similarity.sql")
            .replace("{{model}}", &m.replace('\'', "''"))
            .replace("{{step_a}}", &a.to_string())
            .replace("{{step_b}}", &b.to_string());
        let rows = collect(ctx, &sql).await?;
        let (l, na, nb, cos) = (
            column_f64(&rows, "layer")?,
            column_f64(&rows, "neuron_a")?,
            column_f64(&rows, "neuron_b")?,
            column_f64(&rows, "cosine")?,
        );
        let mut layers: Vec<u16> = l.iter().map(|x| *x as u16).collect();
        layers.sort();
        layers.dedup();
        for lay in layers {
            let entries = (0..l.len())
                .filter(|&i| l[i] as u16 == lay)
                .map(|i| (na[i] as usize, nb[i] as usize, cos[i]));
            for mt in optimal_matching(&dense_matrix(d_model, entries)) {
                model.push(m.clone());
                layer.push(lay);
                step_prev.push(a);
                step.push(b);
                n_prev.push(mt.a as u16);
                n_next.push(mt.b as u16);
                cosine.push(mt.score);
            }
        }
    }
    let same: Vec<bool> = n_prev.iter().zip(&n_next).map(|(a, b)| a == b).collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("layer", DataType::UInt16, false),
        Field::new("step_prev", DataType::UInt32, false),
        Field::new("step", DataType::UInt32, false),
        Field::new("neuron_prev", DataType::UInt16, false),
        Field::new("neuron", DataType::UInt16, false),
        Field::new("cosine", DataType::Float64, false),
        Field::new("same_index", DataType::Boolean, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(model)),
            Arc::new(UInt16Array::from(layer)),
            Arc::new(UInt32Array::from(step_prev)),
            Arc::new(UInt32Array::from(step)),
            Arc::new(UInt16Array::from(n_prev)),
            Arc::new(UInt16Array::from(n_next)),
            Arc::new(Float64Array::from(cosine)),
            Arc::new(BooleanArray::from(same)),
        ],
    )?;
    let path = derived_path(run_dir, "matching");
    let rows = crate::parquet_io::write_parquet(&path, schema, &[batch], metadata)?;
    ctx.deregister_table("matching")?;
    register(ctx, "matching", &path, false).await?;
    Ok(rows)
}
