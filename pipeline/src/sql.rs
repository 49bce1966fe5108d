//! `pipeline sql`: queries over the run's tables, one-shot or at an interactive prompt.

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use queries::session::{SessionOptions, open_run, table_names};

use crate::cli::{OutputFormat, SqlArgs};
use crate::stages::Ctx;
use crate::stages::analyze::{MEMORY_LIMIT, runtime};

/// Runs `pipeline sql`.
pub fn run(ctx: &Ctx, args: &SqlArgs) -> Result<()> {
    let rt = runtime()?;
    let session = rt.block_on(open_run(
        &ctx.run_dir,
        &SessionOptions {
            memory_limit: Some(MEMORY_LIMIT),
            engine: ctx.cfg.engine.engine()?,
            ..Default::default()
        },
    ))?;
    if table_names(&session)
        .iter()
        .all(|t| t == "latest_activations")
    {
        anyhow::bail!(
            "{} has no tables yet; run `pipeline run all` first",
            ctx.run_dir.display()
        );
    }
    let query = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => return repl(&rt, &session, ctx),
    };
    let batches = rt.block_on(execute(&session, &query))?;
    emit(&batches, args.format, args.output.as_deref())
}

/// Plans and runs one query; a missing table lists the tables that exist.
pub async fn execute(session: &SessionContext, query: &str) -> Result<Vec<RecordBatch>> {
    let df = match session.sql(query).await {
        Ok(df) => df,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("table") && msg.contains("not found") {
                anyhow::bail!("{msg}\ntables: {}", table_names(session).join(", "));
            }
            return Err(anyhow::anyhow!(msg));
        }
    };
    Ok(df.collect().await?)
}

fn emit(
    batches: &[RecordBatch],
    format: OutputFormat,
    output: Option<&std::path::Path>,
) -> Result<()> {
    let mut bytes = Vec::new();
    match format {
        OutputFormat::Table => bytes.extend(
            arrow::util::pretty::pretty_format_batches(batches)?
                .to_string()
                .into_bytes(),
        ),
        OutputFormat::Csv => bytes.extend(to_csv(batches)?.into_bytes()),
        OutputFormat::Json => bytes.extend(to_json_lines(batches)?.into_bytes()),
        OutputFormat::Parquet => {
            let path = output.context("--format parquet needs --output FILE")?;
            let schema = batches
                .first()
                .map(|b| b.schema())
                .context("the query returned no batches")?;
            queries::parquet_io::write_parquet(path, schema, batches, &[])?;
            return Ok(());
        }
    }
    if format == OutputFormat::Table {
        bytes.push(b'\n');
    }
    match output {
        Some(path) => crate::manifest::write_atomic(path, &bytes),
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
    }
}

fn repl(rt: &tokio::runtime::Runtime, session: &SessionContext, ctx: &Ctx) -> Result<()> {
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = ctx.run_dir.join(".sql_history");
    let _ = editor.load_history(&history);
    println!("tables: {}", table_names(session).join(", "));
    println!("end a query with `;` — \\q quits");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sql> " } else { "...> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(_) => break,
        };
        if buffer.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
            break;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        let _ = editor.add_history_entry(buffer.trim());
        match rt.block_on(execute(session, &buffer)) {
            Ok(batches) => emit(&batches, OutputFormat::Table, None)?,
            Err(e) => eprintln!("error: {e:#}"),
        }
        buffer.clear();
    }
    let _ = editor.save_history(&history);
    Ok(())
}

/// CSV with a header row; fields with commas, quotes or newlines are quoted.
pub fn to_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let header: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for b in batches {
        let fmt = formatters(b)?;
        for row in 0..b.num_rows() {
            let cells: Vec<String> = fmt
                .iter()
                .map(|f| csv_field(&f.value(row).to_string()))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}

/// One JSON object a row; numbers and booleans stay unquoted, nulls are null.
pub fn to_json_lines(batches: &[RecordBatch]) -> Result<String> {
    use arrow::array::Array;
    let mut out = String::new();
    for b in batches {
        let fmt = formatters(b)?;
        let schema = b.schema();
        for row in 0..b.num_rows() {
            let mut obj = serde_json::Map::new();
            for (c, f) in fmt.iter().enumerate() {
                let field = schema.field(c);
                let text = f.value(row).to_string();
                let value = if b.column(c).is_null(row) {
                    serde_json::Value::Null
                } else if field.data_type().is_numeric()
                    || field.data_type() == &arrow::datatypes::DataType::Boolean
                {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                } else {
                    serde_json::Value::String(text)
                };
                obj.insert(field.name().clone(), value);
            }
            out.push_str(&serde_json::Value::Object(obj).to_string());
            out.push('\n');
        }
    }
    Ok(out)
}

fn formatters(b: &RecordBatch) -> Result<Vec<arrow::util::display::ArrayFormatter<'_>>> {
    let options = arrow::util::display::FormatOptions::default();
    Ok(b.columns()
        .iter()
        .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<_, _>>()?)
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}
