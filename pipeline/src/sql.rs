//! `pipeline sql`: queries over the run's tables, one-shot or at an interactive prompt.

use std::path::Path;

use anyhow::{Context, Result};
use arrow::array::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use queries::session::{SessionOptions, open_run, table_names};

use crate::cli::{OutputFormat, SqlArgs};
use crate::stages::Ctx;
use crate::stages::analyze::{MEMORY_LIMIT, runtime};

/// Runs `pipeline sql`.
pub fn run(ctx: &Ctx, args: &SqlArgs) -> Result<()> {
    if let Some(out) = &args.output {
        refuse_inside_run(out, ctx.layout.root(), "--output")?;
    }
    let rt = runtime()?;
    let session = rt.block_on(open_run(
        ctx.layout.root(),
        &SessionOptions {
            memory_limit: Some(MEMORY_LIMIT),
            engine: ctx.cfg.engine.engine()?,
            ..Default::default()
        },
    ))?;
    if table_names(&session)
        .iter()
        .all(|t| queries::session::view_names().any(|v| v == t))
    {
        anyhow::bail!(
            "{} has no tables yet; run `pipeline run all` first",
            ctx.layout.root().display()
        );
    }
    let query = match (&args.query, &args.file) {
        (Some(q), _) => q.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
        }
        (None, None) => return repl(&rt, &session, ctx, args.allow_copy),
    };
    let access = Access {
        run_dir: ctx.layout.root(),
        allow_copy: args.allow_copy,
    };
    let started = std::time::Instant::now();
    let rows = rt.block_on(async {
        let df = plan(&session, &query, &access).await?;
        emit(df, args.format, args.output.as_deref()).await
    })?;
    report_elapsed(ctx, rows, started);
    Ok(())
}

/// What a query may do. The lake is read-only: DDL and DML are refused, and `COPY ... TO`
/// only with `--allow-copy` and only to a path outside the run directory.
pub struct Access<'a> {
    pub run_dir: &'a Path,
    pub allow_copy: bool,
}

/// Plans one query under `access`; a missing table lists the tables that exist.
pub async fn plan(session: &SessionContext, query: &str, access: &Access<'_>) -> Result<DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(access.allow_copy);
    let df = match session.sql_with_options(query, options).await {
        Ok(df) => df,
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("table") && msg.contains("not found") {
                anyhow::bail!("{msg}\ntables: {}", table_names(session).join(", "));
            }
            if let Some(kind) = ["DDL", "DML"]
                .into_iter()
                .find(|k| msg.contains(&format!("{k} not supported")))
            {
                let what = msg.rsplit(": ").next().unwrap_or(kind);
                anyhow::bail!(
                    "`pipeline sql` only reads the run's tables: {kind} statements ({what}) are refused. \
                     Save a result with --output FILE, or pass --allow-copy for COPY ... TO a file outside the run"
                );
            }
            return Err(anyhow::anyhow!(msg));
        }
    };
    let mut refusal = None;
    df.logical_plan().apply(|node| {
        match node {
            LogicalPlan::Dml(dml) => {
                refusal = Some(format!(
                    "{} is refused: `pipeline sql` never changes the run's tables",
                    dml.op
                ))
            }
            LogicalPlan::Copy(copy) => {
                if let Err(e) =
                    refuse_inside_run(Path::new(&copy.output_url), access.run_dir, "COPY ... TO")
                {
                    refusal = Some(e.to_string());
                }
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    match refusal {
        Some(why) => anyhow::bail!(why),
        None => Ok(df),
    }
}

/// Fails when `path` lies inside the run directory: only stages write there.
fn refuse_inside_run(path: &Path, run_dir: &Path, what: &str) -> Result<()> {
    let absolute = |p: &Path| -> Result<std::path::PathBuf> {
        let p =
            std::path::absolute(p).with_context(|| format!("cannot resolve {}", p.display()))?;
        // Resolve links of the part that exists, so `runs/x/../x/...` or a link is caught too.
        let mut existing = p.as_path();
        let mut rest = Vec::new();
        while !existing.exists() {
            let Some(parent) = existing.parent() else {
                break;
            };
            rest.push(existing.file_name().unwrap_or_default().to_owned());
            existing = parent;
        }
        let mut resolved = existing
            .canonicalize()
            .unwrap_or_else(|_| existing.to_owned());
        resolved.extend(rest.iter().rev());
        Ok(resolved)
    };
    // COPY targets may be written as file:// URLs.
    let target = match path.to_str().and_then(|s| s.strip_prefix("file://")) {
        Some(local) => absolute(Path::new(local))?,
        None => absolute(path)?,
    };
    let run = absolute(run_dir)?;
    if target.starts_with(&run) {
        anyhow::bail!(
            "{what} {}: that is inside the run directory {}, which only the stages write; choose a path outside it",
            path.display(),
            run.display()
        );
    }
    Ok(())
}

/// Runs a planned query and writes its rows as they arrive (CSV, JSON lines, Parquet), so a
/// result larger than memory streams through; the table format waits for all rows to size its
/// columns. Returns the number of rows.
async fn emit(df: DataFrame, format: OutputFormat, output: Option<&Path>) -> Result<usize> {
    use futures::StreamExt;
    let mut rows = 0;
    if format == OutputFormat::Parquet {
        let path = output.context("--format parquet needs --output FILE")?;
        let schema = df.schema().inner().clone();
        let mut stream = df.execute_stream().await?;
        let mut file = queries::parquet_io::AtomicParquet::create(path, schema, &[])?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            rows += batch.num_rows();
            file.write(&batch)?;
        }
        file.finish()?;
        return Ok(rows);
    }
    if format == OutputFormat::Table {
        let batches = df.collect().await?;
        let mut text = arrow::util::pretty::pretty_format_batches(&batches)?.to_string();
        text.push('\n');
        write_out(output, text.as_bytes())?;
        return Ok(batches.iter().map(|b| b.num_rows()).sum());
    }
    let mut sink = Sink::open(output)?;
    let header = format == OutputFormat::Csv;
    let mut first = true;
    let mut stream = df.execute_stream().await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        let text = match format {
            OutputFormat::Csv => to_csv(std::slice::from_ref(&batch), header && first)?,
            _ => to_json_lines(std::slice::from_ref(&batch))?,
        };
        first = false;
        sink.write(text.as_bytes())?;
    }
    sink.finish()?;
    Ok(rows)
}

/// "12 rows in 0.034 s" on stderr, as datafusion-cli prints it (not with --quiet).
fn report_elapsed(ctx: &Ctx, rows: usize, started: std::time::Instant) {
    ctx.ui.say(&format!(
        "{rows} row{} in {:.3} s",
        if rows == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    ));
}

fn write_out(output: Option<&Path>, bytes: &[u8]) -> Result<()> {
    let mut sink = Sink::open(output)?;
    sink.write(bytes)?;
    sink.finish()
}

/// Standard output, or a file written under a temporary name and renamed when complete (the
/// temporary file is removed if the query fails on the way).
struct Sink {
    stdout: Option<std::io::StdoutLock<'static>>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl Sink {
    fn open(output: Option<&Path>) -> Result<Self> {
        let Some(path) = output else {
            return Ok(Self {
                stdout: Some(std::io::stdout().lock()),
                file: None,
                tmp: Default::default(),
                path: Default::default(),
            });
        };
        let tmp = queries::durable::temp_path(path);
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        Ok(Self {
            stdout: None,
            file: Some(std::io::BufWriter::new(file)),
            tmp,
            path: path.to_owned(),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        match (&mut self.stdout, &mut self.file) {
            (Some(out), _) => match out.write_all(bytes) {
                // `pipeline sql ... | head`: the reader has what it wanted.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
                other => other?,
            },
            (None, Some(file)) => file
                .write_all(bytes)
                .with_context(|| format!("cannot write {}", self.tmp.display()))?,
            (None, None) => unreachable!("a sink writes to stdout or a file"),
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        use std::io::Write;
        if let Some(out) = &mut self.stdout {
            return Ok(out.flush()?);
        }
        let file = self.file.take().expect("a sink writes to stdout or a file");
        let synced = file
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all());
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(e).with_context(|| format!("cannot write {}", self.tmp.display()));
        }
        Ok(queries::durable::commit(&self.tmp, &self.path)?)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn repl(
    rt: &tokio::runtime::Runtime,
    session: &SessionContext,
    ctx: &Ctx,
    allow_copy: bool,
) -> Result<()> {
    let access = Access {
        run_dir: ctx.layout.root(),
        allow_copy,
    };
    let mut editor = rustyline::DefaultEditor::new()?;
    let history = ctx.layout.sql_history();
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
        let started = std::time::Instant::now();
        let shown = rt.block_on(async {
            let df = plan(session, &buffer, &access).await?;
            emit(df, OutputFormat::Table, None).await
        });
        match shown {
            Ok(rows) => report_elapsed(ctx, rows, started),
            Err(e) => eprintln!("error: {e:#}"),
        }
        buffer.clear();
    }
    let _ = editor.save_history(&history);
    Ok(())
}

/// CSV (with a header row when `header`); fields with commas, quotes or newlines are quoted.
pub fn to_csv(batches: &[RecordBatch], header: bool) -> Result<String> {
    let mut out = String::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let names: Vec<String> = first
        .schema()
        .fields()
        .iter()
        .map(|f| csv_field(f.name()))
        .collect();
    if header {
        out.push_str(&names.join(","));
        out.push('\n');
    }
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
    let mut out = String::new();
    for row in json_rows(batches)? {
        out.push_str(&serde_json::Value::Object(row).to_string());
        out.push('\n');
    }
    Ok(out)
}

/// The rows of `batches` as JSON objects keyed by column name: numbers and booleans as JSON
/// numbers and booleans (a non-finite float as its text), nulls as null, the rest as text.
pub fn json_rows(
    batches: &[RecordBatch],
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    use arrow::array::Array;
    let mut rows = Vec::new();
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
            rows.push(obj);
        }
    }
    Ok(rows)
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
