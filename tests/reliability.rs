//! Tables that never lie: after a config change, a crash, or a query, a run's outputs are
//! exactly what a fresh run with the current config produces, and SQL cannot change them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{command, differences, fixture, leftovers, pipeline, snapshot, stderr};

fn run_all(dir: &Path, sets: &[String], force: bool) {
    let mut args = vec!["run", "all"];
    if force {
        args.push("--force");
    }
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let out = pipeline(dir, &fixture(), &args);
    assert!(out.status.success(), "{sets:?}: {}", stderr(&out));
}

fn sql(dir: &Path, sets: &[String], query: &str) -> String {
    let mut args = vec!["sql", query, "--format", "csv"];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let out = pipeline(dir, &fixture(), &args);
    assert!(out.status.success(), "{query}: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// One changed key at a time on one run, each compared with a fresh run of the same config:
/// every table, checkpoint and SAE file, and the report's file list must be equal.
#[test]
fn a_run_changed_key_by_key_equals_a_fresh_run_of_each_config() {
    let tmp = tempfile::tempdir().unwrap();
    let evolving = tmp.path().join("evolving");
    // Small partitions in several part files, so the multi-part path is what is compared.
    let mut sets = vec!["record.rows_per_file=500".to_owned()];
    run_all(&evolving, &sets, false);
    // (key=value, needs --force): train.steps changes the training schedule, which `train`
    // refuses to resume into without --force.
    let changes = [
        ("record.k=2", false),
        ("record.value_type=\"f16\"", false),
        ("data.eval_tokens=384", false),
        ("analyze.weight=\"count\"", false),
        ("sae.enabled=false", false),
        ("models=[\"topk\"]", false),
        ("train.steps=10", true),
    ];
    for (i, (change, force)) in changes.iter().enumerate() {
        sets.push(change.to_string());
        run_all(&evolving, &sets, *force);
        let fresh = tmp.path().join(format!("fresh-{i}"));
        run_all(&fresh, &sets, false);
        let diffs = differences(
            &snapshot(&evolving.join("e2e")),
            &snapshot(&fresh.join("e2e")),
        );
        assert!(diffs.is_empty(), "after {change}:\n{}", diffs.join("\n"));
        if *change == "record.k=2" {
            // The reported bug: the old k = 4 partitions were kept.
            let per_token = sql(
                &evolving,
                &sets,
                "SELECT COUNT(*) / COUNT(DISTINCT token_index) AS k FROM activations WHERE model = 'topk' AND layer = 0 AND step = 20",
            );
            assert_eq!(per_token.lines().nth(1), Some("2"), "{per_token}");
        }
        if *change == "data.eval_tokens=384" {
            let top = sql(
                &evolving,
                &sets,
                "SELECT MAX(token_index) AS m FROM activations",
            );
            assert_eq!(top.lines().nth(1), Some("383"), "{top}");
        }
    }
    // The last config: one model, ten steps, no SAEs; nothing else is left in the run.
    let run = evolving.join("e2e");
    assert!(!run.join("sae").exists());
    assert!(!run.join("train/dense").exists());
    assert!(!run.join("record/activations/model=dense").exists());
    assert!(!run.join("record/activations/model=topk/step=20").exists());
    assert!(leftovers(&run).is_empty(), "{:?}", leftovers(&run));
}

/// SIGKILL at four moments of every stage (0.1, 0.35, 0.6 and 0.85 of the stage's duration in
/// an uninterrupted run), each followed by a restart; the finished run equals the uninterrupted
/// one, table by table and checkpoint by checkpoint. At least 20 of the 28 kills must land
/// while the process runs (a kill after it finished tests nothing).
#[test]
fn killed_at_twenty_eight_moments_the_resumed_run_equals_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = ["record.rows_per_file=500".to_owned()];
    let clean = tmp.path().join("clean");
    let started = Instant::now();
    run_all(&clean, &sets, false);
    let clean_seconds = started.elapsed().as_secs_f64();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(clean.join("e2e/manifest.json")).unwrap()).unwrap();
    let stages = [
        "prepare", "train", "sae", "record", "analyze", "steer", "report",
    ];

    let killed = tmp.path().join("killed");
    let args = |stage: &str| -> Vec<String> {
        let mut a = vec!["run".to_owned(), stage.to_owned()];
        for s in &sets {
            a.extend(["--set".to_owned(), s.clone()]);
        }
        a
    };
    // How long a start takes before the first stage works: a run whose stages are all done.
    let startup = {
        let t = Instant::now();
        run_all(&clean, &sets, false);
        t.elapsed().as_secs_f64()
    };
    let mut landed = 0;
    let mut hit = std::collections::BTreeMap::<String, usize>::new();
    for stage in stages {
        let seconds = manifest["stages"][stage]["seconds"].as_f64().unwrap();
        for fraction in [0.1, 0.35, 0.6, 0.85] {
            let a = args("all");
            let refs: Vec<&str> = a.iter().map(String::as_str).collect();
            let mut child = command(&killed, &fixture(), &refs).spawn().unwrap();
            std::thread::sleep(Duration::from_secs_f64(startup + fraction * seconds));
            if child.try_wait().unwrap().is_none() {
                landed += 1;
                // SIGKILL: no destructor, no clean-up; what is on disk is all there is.
                child.kill().unwrap();
                let m: serde_json::Value = std::fs::read(killed.join("e2e/manifest.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                let running = stages
                    .iter()
                    .find(|s| m["stages"][**s]["status"] == "running")
                    .map_or("none", |s| s);
                *hit.entry(running.to_owned()).or_default() += 1;
            }
            child.wait().unwrap();
        }
        // Finish this stage before aiming at the next one.
        let a = args(stage);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = command(&killed, &fixture(), &refs).output().unwrap();
        assert!(out.status.success(), "{stage}: {}", stderr(&out));
    }
    run_all(&killed, &sets, false);
    let diffs = differences(
        &snapshot(&clean.join("e2e")),
        &snapshot(&killed.join("e2e")),
    );
    eprintln!(
        "fault injection: {landed} kills landed (stage running when killed: {hit:?}); uninterrupted run {clean_seconds:.1} s; {} differences",
        diffs.len()
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(landed >= 20, "only {landed} kills landed: {hit:?}");
    let left = leftovers(&killed.join("e2e"));
    assert!(left.is_empty(), "{left:?}");
}

/// Paths reach DataFusion as literal file URLs: a run named `exp[1]` below a folder `p[a]` reads
/// its own files, never those of `exp1`, which the glob `exp[1]` would match.
#[test]
fn glob_characters_in_run_and_folder_names_are_taken_literally() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("p[a]");
    let sets = vec![
        "run.name=\"exp[1]\"".to_owned(),
        "sae.enabled=false".to_owned(),
    ];
    run_all(&parent, &sets, false);
    let run = parent.join("exp[1]");
    assert!(run.join("analyze/token_entropy.parquet").exists());
    // A sibling that the glob would match, holding only one model.
    let decoy = parent.join("exp1");
    copy_dir(&run, &decoy);
    std::fs::remove_dir_all(decoy.join("record/activations/model=dense")).unwrap();
    let models = sql(
        &parent,
        &sets,
        "SELECT COUNT(DISTINCT model) AS n FROM activations",
    );
    assert_eq!(models.lines().nth(1), Some("2"), "{models}");
}

/// `pipeline sql` only reads: statements that would change a table are refused with the
/// statement named, `COPY` needs `--allow-copy` and a target outside the run, and the run's
/// files are byte for byte what they were.
#[test]
fn sql_cannot_change_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sets = vec!["sae.enabled=false".to_owned()];
    run_all(tmp.path(), &sets, false);
    let run = tmp.path().join("e2e");
    let before = snapshot(&run);
    let refused = [
        (
            "INSERT INTO activations_stored SELECT * FROM activations_stored LIMIT 1",
            "Insert Into",
        ),
        ("CREATE TABLE t AS SELECT 1 AS x", "DDL"),
        ("DROP TABLE tokens", "DDL"),
        ("DELETE FROM tokens", "DML"),
        (
            "COPY (SELECT 1 AS x) TO '/tmp/should-not-exist.parquet'",
            "COPY",
        ),
    ];
    for (query, named) in refused {
        let out = pipeline(tmp.path(), &fixture(), &["sql", query, "--set", &sets[0]]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{query} was allowed");
        assert!(
            err.contains(named) && err.contains("pipeline sql"),
            "{query}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // With --allow-copy: inside the run refused, outside written.
    let inside = run.join("record/activations/model=dense/copied.parquet");
    let outside = tmp.path().join("export.parquet");
    for (target, ok) in [(&inside, false), (&outside, true)] {
        let q = format!(
            "COPY (SELECT neuron FROM activations LIMIT 5) TO '{}'",
            target.display()
        );
        let out = pipeline(
            tmp.path(),
            &fixture(),
            &["sql", &q, "--allow-copy", "--set", &sets[0]],
        );
        assert_eq!(out.status.success(), ok, "{q}: {}", stderr(&out));
        assert_eq!(target.exists(), ok);
    }
    // --output inside the run is refused too; outside, the streamed CSV is whole.
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &[
            "sql",
            "SELECT 1",
            "--output",
            run.join("x.csv").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success() && stderr(&out).contains("inside the run"));
    let csv = tmp.path().join("tokens.csv");
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &[
            "sql",
            "SELECT token_index FROM tokens ORDER BY 1",
            "--format",
            "csv",
            "--output",
            csv.to_str().unwrap(),
            "--set",
            &sets[0],
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 513, "a header and one line per token");
    assert_eq!(
        (lines[0], lines[1], lines[512]),
        ("token_index", "0", "511")
    );
    assert!(differences(&before, &snapshot(&run)).is_empty());
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Bad input of every kind ends with a short error that names what to fix, a non-zero exit,
/// no panic, and no run directory.
#[test]
fn bad_input_is_refused_with_a_short_error_naming_what_to_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let big_lexicon = tmp.path().join("big.tsv");
    let lines: String = (0..65_536).map(|i| format!("w{i}\tc{i}\n")).collect();
    std::fs::write(&big_lexicon, lines).unwrap();
    let bad_lexicon = tmp.path().join("bad.tsv");
    std::fs::write(&bad_lexicon, "dog\tnoun.animal\ncat\n").unwrap();
    let not_gzip = tmp.path().join("corpus.txt.gz");
    std::fs::write(&not_gzip, "plain text, not gzip").unwrap();
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    let set = |kv: &str| {
        vec![
            "config".to_owned(),
            "show".to_owned(),
            "--set".to_owned(),
            kv.to_owned(),
        ]
    };
    let prepare = |kv: String| vec!["prepare".to_owned(), "--set".to_owned(), kv];
    let cases: Vec<(Vec<String>, &str)> = vec![
        (set("run.name=\".\""), "run.name"),
        (set("run.name=\"..\""), "run.name"),
        (set("run.name=\"a/b\""), "run.name"),
        (set("models=[\"topk\", \"a#b\"]"), "models"),
        (set("models=[]"), "models"),
        (set("models=[\"sae\"]"), "models"),
        (set("sae.expansion=4611686018427387904"), "sae.expansion"),
        (set("sae.expansion=4096"), "sae.expansion"),
        (set("sae.expansion=0"), "sae.expansion"),
        (set("sae.expansion=512"), "at most 8192"),
        (set("model.d_model=16384"), "model.d_model"),
        (set("record.k=999"), "record.k"),
        (set("record.rows_per_file=0"), "record.rows_per_file"),
        (set("record.value_type=\"f8\""), "record.value_type"),
        (set("data.eval_tokens=0"), "data.eval_tokens"),
        (set("data.val_fraction=1.5"), "data.val_fraction"),
        (set("model.topk_k=999"), "topk_k"),
        (set("model.n_layers=0"), "n_layers"),
        (set("train.steps=\"many\""), "train.steps"),
        (set("no.such_key=1"), "unknown key `no`"),
        (set("run.backend=\"tpu\""), "run.backend"),
        (set("analyze.weight=\"median\""), "analyze.weight"),
        (set("engine.kind=\"spark\""), "engine"),
        (
            prepare(format!("data.lexicon=\"{}\"", big_lexicon.display())),
            "65,535",
        ),
        (
            prepare(format!("data.lexicon=\"{}\"", bad_lexicon.display())),
            "line 2",
        ),
        (
            prepare(format!("data.corpus=\"{}\"", not_gzip.display())),
            "corpus.txt.gz",
        ),
        (
            prepare(format!("data.corpus=\"{}\"", empty.display())),
            "empty.txt",
        ),
        (
            prepare(format!(
                "data.corpus=\"{}\"",
                tmp.path().join("nope").display()
            )),
            "nope",
        ),
        (vec!["run".into(), "everything".into()], "everything"),
    ];
    let runs = tmp.path().join("runs");
    for (args, named) in &cases {
        let err = refused(&runs, args, named, &format!("{args:?}"));
        assert!(!runs.join("e2e").exists(), "{args:?} left a run directory");
        let shown = err
            .lines()
            .next()
            .unwrap()
            .replace(&tmp.path().display().to_string(), "…");
        eprintln!(
            "| `{}` | {shown} |",
            args.join(" ").replace("config show --set ", "")
        );
    }
    eprintln!("bad inputs refused: {}", cases.len());
}

/// Unmounts a test's file system when the test ends, however it ends.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A disk that fills up in the middle of training: the stage ends with a short error naming
/// the file and the cause, no temporary file is left, and what earlier stages made still reads.
#[test]
fn a_full_disk_ends_the_stage_with_a_short_error_and_keeps_earlier_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = tmp.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    // 3 MiB: the prepared data fits, the checkpoints of two models (about 4 MiB) do not.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&disk)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs for this test"
        );
        eprintln!("SKIPPED: cannot mount a tmpfs here (needs root)");
        return;
    }
    let _unmount = Mounted(disk.clone());
    let sets = ["sae.enabled=false".to_owned()];
    let out = pipeline(&disk, &fixture(), &["run", "all", "--set", &sets[0]]);
    let err = stderr(&out);
    assert!(!out.status.success(), "the run fitted in 3 MiB");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains(disk.to_str().unwrap()),
        "names the file: {err}"
    );
    assert!(
        err.lines().count() <= 3 && !err.contains("panicked"),
        "{err}"
    );
    let run = disk.join("e2e");
    assert!(leftovers(&run).is_empty(), "{:?}", leftovers(&run));
    let tokens = sql(&disk, &sets, "SELECT COUNT(*) AS n FROM tokens");
    assert_eq!(tokens.lines().nth(1), Some("512"), "{tokens}");
}

/// Damaged files inside a finished run, bad imports and bad queries: each refused with a short
/// error naming the file, and the run's tables and manifest left as they were.
#[test]
fn damaged_files_and_bad_queries_are_named_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    run_all(&base, &[], false);
    // Each case gets its own copy of the finished run.
    type Damage = Box<dyn Fn(&Path)>;
    let write = |rel: &'static str, bytes: &'static [u8]| -> Damage {
        Box::new(move |run: &Path| std::fs::write(run.join(rel), bytes).unwrap())
    };
    let cases: Vec<(&str, Damage, Vec<String>, &str)> = vec![
        (
            "tokens.parquet with token_id stored as text",
            Box::new(|run: &Path| retype_token_id(&run.join("prepare/tokens.parquet"))),
            args(&["record"]),
            "column `token_id` is Utf8",
        ),
        (
            "a truncated checkpoint",
            Box::new(|run: &Path| {
                let f = run.join("train/topk/checkpoints/step-0000020/model.safetensors");
                let bytes = std::fs::read(&f).unwrap();
                std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
            }),
            args(&["record"]),
            "step-0000020/model.safetensors",
        ),
        (
            "a truncated SAE file",
            write(
                "sae/dense-sae/step-0000010/layer-1.safetensors",
                b"\x10\x00",
            ),
            args(&["record", "--force"]),
            "layer-1.safetensors",
        ),
        (
            "a tokenizer.json that is not one",
            write("prepare/tokenizer.json", b"{\"not\": \"a tokenizer\"}"),
            args(&["record", "--force"]),
            "tokenizer.json",
        ),
        (
            "a manifest.json that is not JSON",
            write("manifest.json", b"{"),
            args(&["analyze"]),
            "manifest.json",
        ),
        (
            "an empty prompts file",
            Box::new(|run: &Path| std::fs::write(run.join("../prompts.txt"), "\n\n").unwrap()),
            args(&[
                "steer",
                "--eval",
                "--force",
                "--set",
                "steer.prompts=\"../prompts.txt\"",
            ]),
            "has no prompts",
        ),
        (
            "an SQL syntax error",
            Box::new(|_: &Path| {}),
            args(&["sql", "SELEKT 1"]),
            "SELEKT",
        ),
        (
            "an SQL query on a table that does not exist",
            Box::new(|_: &Path| {}),
            args(&["sql", "SELECT * FROM nope"]),
            "tables: ",
        ),
        (
            "an SQL division of strings",
            Box::new(|_: &Path| {}),
            args(&["sql", "SELECT 'a' / 'b'"]),
            "Utf8",
        ),
        (
            "an imported checkpoint whose topk_k exceeds d_model",
            Box::new(|run: &Path| {
                import_source(run);
                let meta = run.join("../source/topk/checkpoints/step-0000020/meta.json");
                let mut json: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
                json["topk_k"] = 999.into();
                std::fs::write(&meta, json.to_string()).unwrap();
            }),
            args(&["train", "--set", "load.source=\"../source\""]),
            "topk_k = 999",
        ),
        (
            "an imported model with fewer layers than the config",
            Box::new(import_source),
            args(&[
                "train",
                "--set",
                "load.source=\"../source\"",
                "--set",
                "model.n_layers=4",
            ]),
            "n_layers = 3",
        ),
        (
            "a load.source folder that does not exist",
            Box::new(|_: &Path| {}),
            args(&["train", "--set", "load.source=\"../nowhere\""]),
            "there is no folder",
        ),
    ];
    eprintln!("| bad input | command | what the user sees |\n|---|---|---|");
    for (what, damage, args, named) in cases {
        let case = tmp.path().join(what.replace(' ', "-"));
        std::fs::create_dir_all(&case).unwrap();
        copy_dir(&base.join("e2e"), &case.join("e2e"));
        let run = case.join("e2e");
        damage(&run);
        let before = snapshot(&run);
        let manifest = std::fs::read(run.join("manifest.json")).unwrap();
        // Paths in --set are relative to the run's parent, as a user would give them.
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("../", &format!("{}/", case.display())))
            .collect();
        let err = refused(&case, &args, named, what);
        assert_eq!(
            std::fs::read(run.join("manifest.json")).unwrap(),
            manifest,
            "{what}"
        );
        assert!(
            differences(&before, &snapshot(&run)).is_empty(),
            "{what} changed the run"
        );
        let shown = err
            .lines()
            .next()
            .unwrap()
            .replace(&case.display().to_string(), "…");
        eprintln!("| {what} | `pipeline {}` | {shown} |", args[..1].join(" "));
    }
}

/// Runs `pipeline ARGS` and checks that it was refused as a user should be: a non-zero exit,
/// at most three lines naming `named`, no panic. Returns the error text.
fn refused(dir: &Path, args: &[String], named: &str, what: &str) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = pipeline(dir, &fixture(), &refs);
    let err = stderr(&out);
    assert!(!out.status.success(), "{what}: succeeded");
    assert!(err.contains(named), "{what}: expected `{named}` in {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{what}: {err}"
    );
    assert!(err.lines().count() <= 3, "{what}: {err}");
    err
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `load.source` beside the run: the run's own `train/` folder, as another tool would hand it.
fn import_source(run: &Path) {
    let source = run.join("../source");
    if !source.exists() {
        copy_dir(&run.join("train"), &source);
    }
}

/// Rewrites a tokens table with its `token_id` column stored as text, keeping its metadata.
fn retype_token_id(path: &Path) {
    use std::sync::Arc;
    let file = std::fs::File::open(path).unwrap();
    let builder =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned();
    let batches: Vec<_> = builder.build().unwrap().map(Result::unwrap).collect();
    let schema = batches[0].schema();
    let i = schema.index_of("token_id").unwrap();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields[i] = Arc::new(arrow::datatypes::Field::new(
        "token_id",
        arrow::datatypes::DataType::Utf8,
        false,
    ));
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_key_value_metadata(kv)
        .build();
    let out = std::fs::File::create(path).unwrap();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props)).unwrap();
    for b in batches {
        let mut cols = b.columns().to_vec();
        cols[i] = arrow::compute::cast(&cols[i], &arrow::datatypes::DataType::Utf8).unwrap();
        writer
            .write(&arrow::array::RecordBatch::try_new(schema.clone(), cols).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
}
