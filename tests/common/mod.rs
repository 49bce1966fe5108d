//! What the end-to-end tests share: the built `pipeline` binary run on a small fixture corpus
//! with a tiny model, in a temporary run directory.
#![allow(dead_code)] // each test file uses its own part

pub mod browser;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::Digest;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tiny model and schedule so the whole pipeline runs in seconds.
pub const TINY: &[&str] = &[
    "model.vocab_size=300",
    "model.block_size=32",
    "model.d_model=32",
    "model.n_heads=2",
    "model.n_layers=3",
    "model.d_ff=64",
    "model.topk_k=4",
    "model.n_nontopk=1",
    "train.steps=20",
    "train.checkpoint_every=10",
    "train.batch_size=8",
    "train.eval_batches=2",
    "train.warmup_steps=5",
    "data.eval_tokens=512",
    "data.val_fraction=0.2",
    "report.neurons_per_layer=3",
    "sae.steps=20",
    "sae.batch_size=64",
    "sae.train_tokens=512",
    "sae.eval_tokens=256",
    "sae.aux_k=8",
    "sae.dead_after_tokens=512",
];

/// Runs `pipeline ARGS` on the fixture and waits for it.
pub fn pipeline(run_dir: &Path, corpus: &Path, args: &[&str]) -> Output {
    command(run_dir, corpus, args)
        .output()
        .expect("the pipeline binary runs")
}

/// The `pipeline ARGS` command on the fixture, for tests that start and stop it themselves.
/// The fixture's settings come first and a test's own `--set`s last, so the test's win.
pub fn command(run_dir: &Path, corpus: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pipeline"));
    cmd.current_dir(repo()).arg("--quiet");
    let mut sets = vec![
        format!("run.dir={}", run_dir.display()),
        "run.name=e2e".to_owned(),
        format!("data.corpus={}", corpus.display()),
    ];
    sets.extend(TINY.iter().map(|s| s.to_string()));
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match (*arg, it.clone().next()) {
            ("--set", Some(value)) => {
                sets.push(value.to_string());
                it.next();
            }
            _ => rest.push(*arg),
        }
    }
    cmd.args(rest);
    for s in &sets {
        cmd.arg("--set").arg(s);
    }
    cmd
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn fixture() -> PathBuf {
    repo().join("tests/fixtures/corpus.txt")
}

/// Columns that measure time, not results: left out when two runs are compared.
const TIMING_COLUMNS: &[&str] = &["seconds", "tokens_per_second"];

/// What a run's outputs say, in a form two runs can be compared by: every Parquet table as
/// its sorted rows (partition folders as leading fields, floats to 9 significant digits,
/// timing columns left out), the SHA-256 of every checkpoint and SAE file, and the names of
/// the report's files. Hidden files (locks, temporary files) are not outputs.
pub fn snapshot(run: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files_below(run) {
        let rel = file
            .strip_prefix(run)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet") {
            // record/activations/model=topk/step=20/layer=0/part-0000.parquet
            //   → table "record/activations", leading fields "model=topk/step=20/layer=0"
            let parts: Vec<&str> = rel.split('/').collect();
            let keys: Vec<&str> = parts.iter().copied().filter(|p| p.contains('=')).collect();
            let table = if keys.is_empty() {
                rel.clone()
            } else {
                parts
                    .iter()
                    .copied()
                    .take_while(|p| !p.contains('='))
                    .collect::<Vec<_>>()
                    .join("/")
            };
            let rows = out.entry(table).or_default();
            for row in parquet_rows(&file) {
                rows.push(format!("{}|{row}", keys.join("/")));
            }
        } else if name.ends_with(".safetensors") {
            let digest = sha2::Sha256::digest(std::fs::read(&file).unwrap());
            out.entry("weights".into())
                .or_default()
                .push(format!("{rel} {}", hex::encode(digest)));
        } else if rel.starts_with("report/") {
            out.entry("report files".into()).or_default().push(rel);
        }
    }
    for rows in out.values_mut() {
        rows.sort();
    }
    out
}

/// Paths of the leftovers a crashed stage could leave: temporary files and staging folders.
pub fn leftovers(run: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![run.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".tmp") || name == ".staging" || name == ".state.old" {
                found.push(path.clone());
            }
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Every file below `dir`, not descending into hidden folders, hidden files left out.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The rows of one Parquet file as text, one field per column.
fn parquet_rows(path: &Path) -> Vec<String> {
    use arrow::array::Array;
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let options = arrow::util::display::FormatOptions::default();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let mut columns: Vec<Vec<String>> = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if TIMING_COLUMNS.contains(&field.name().as_str()) {
                continue;
            }
            let col = batch.column(i);
            let text: Vec<String> = if col.data_type().is_floating() {
                let col = arrow::compute::cast(col, &arrow::datatypes::DataType::Float64).unwrap();
                let c = col
                    .as_any()
                    .downcast_ref::<arrow::array::Float64Array>()
                    .unwrap();
                (0..c.len())
                    .map(|r| match c.is_null(r) {
                        true => "null".into(),
                        false => format!("{:.8e}", c.value(r)),
                    })
                    .collect()
            } else {
                let f =
                    arrow::util::display::ArrayFormatter::try_new(col.as_ref(), &options).unwrap();
                (0..col.len())
                    .map(|r| match col.is_null(r) {
                        true => "null".into(),
                        false => f.value(r).to_string(),
                    })
                    .collect()
            };
            columns.push(text);
        }
        for r in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| c[r].as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    rows
}

/// Lines where two snapshots differ (at most a few per table), empty when they are equal.
pub fn differences(
    a: &BTreeMap<String, Vec<String>>,
    b: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for table in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (x, y) = (a.get(table), b.get(table));
        match (x, y) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) => {
                let (xs, ys): (std::collections::BTreeSet<_>, std::collections::BTreeSet<_>) =
                    (x.iter().collect(), y.iter().collect());
                let only_a: Vec<_> = xs.difference(&ys).take(3).collect();
                let only_b: Vec<_> = ys.difference(&xs).take(3).collect();
                diffs.push(format!(
                    "{table}: {} vs {} rows; only in the first: {only_a:?}; only in the second: {only_b:?}",
                    x.len(),
                    y.len()
                ));
            }
            (Some(_), None) => diffs.push(format!("{table}: only in the first")),
            (None, _) => diffs.push(format!("{table}: only in the second")),
        }
    }
    diffs
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The rows of `pipeline sql QUERY --format csv` on the run (header dropped), with extra
/// `--set`s (the run's own, so the config matches the one it was made with).
pub fn sql_rows(run_dir: &Path, query: &str, sets: &[&str]) -> Vec<String> {
    let mut args = vec!["sql", query, "--format", "csv"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = pipeline(run_dir, &fixture(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_owned)
        .collect()
}

/// A local Ballista cluster (`pipeline cluster start`, two executors) on a free port, and its
/// `df://` URL; stopped when dropped, as `kill` stops it (SIGTERM, so it removes its executors'
/// folder), and killed outright if it has not stopped within ten seconds.
pub struct Cluster {
    child: std::process::Child,
    /// The reading end stays open while the cluster runs: it prints more after its banner.
    _banner: std::io::BufReader<std::process::ChildStdout>,
    pub url: String,
    /// The executors' shuffle files, as the banner names it.
    pub work_dir: std::path::PathBuf,
}

impl Cluster {
    pub fn start() -> Self {
        use std::io::BufRead;
        let port = free_port();
        let url = format!("df://127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipeline"))
            .current_dir(repo())
            .args([
                "cluster",
                "start",
                "--executors",
                "2",
                "--port",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the pipeline binary runs");
        let mut banner = std::io::BufReader::new(child.stdout.take().unwrap());
        let (mut first, mut second) = (String::new(), String::new());
        banner.read_line(&mut first).unwrap();
        assert!(first.contains(&url), "{first}");
        banner.read_line(&mut second).unwrap();
        let work_dir = second
            .strip_prefix("Shuffle files in ")
            .and_then(|rest| rest.split(" (removed").next())
            .unwrap_or_else(|| panic!("no shuffle folder in {second:?}"))
            .into();
        Self {
            child,
            _banner: banner,
            url,
            work_dir,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
