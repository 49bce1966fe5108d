//! End-to-end: the built `pipeline` binary on a small fixture corpus, in a temporary run dir.

use std::path::Path;
use std::process::Command;

mod common;
use common::browser::chromium_or_skip;
use common::{Cluster, fixture, pipeline, repo, sql_rows, stderr};

/// A loopback port nothing listens on (bound, then freed).
#[test]
fn run_all_produces_every_table_and_a_second_run_does_no_work() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["run", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("e2e");
    for rel in [
        "manifest.json",
        "prepare/tokenizer.json",
        "prepare/tokens.parquet",
        "train/metrics.parquet",
        "train/topk/checkpoints/step-0000020/model.safetensors",
        "train/dense/checkpoints/step-0000010/meta.json",
        "record/activations/model=topk/step=20/layer=0/part-0000.parquet",
        "record/neurons/model=dense/step=0/layer=2/part-0000.parquet",
        "analyze/semantic_entropy.parquet",
        "analyze/lineage.parquet",
        "analyze/stability.parquet",
        "sae/quality.parquet",
        "sae/dense-sae/step-0000020/layer-1.safetensors",
        "sae/dense-sae-seed2/step-0000020/layer-0.safetensors",
        "record/activations/model=dense-sae/step=20/layer=1/part-0000.parquet",
        "report/index.html",
        "report/figures/loss.png",
    ] {
        assert!(run.join(rel).exists(), "missing {rel}");
    }

    // Exactly k rows per evaluation token in a TopK layer, and in a recorded dense layer.
    let sql = |q: &str| {
        let o = pipeline(tmp.path(), &fixture(), &["sql", q, "--format", "csv"]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let n_tokens: usize = sql("SELECT COUNT(*) AS n FROM tokens")
        .lines()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(n_tokens, 512);
    let per_token = sql(
        "SELECT model, layer, COUNT(*) AS n FROM activations WHERE step = 20 GROUP BY model, layer ORDER BY model, layer",
    );
    for line in per_token.lines().skip(1) {
        let n: usize = line.rsplit(',').next().unwrap().parse().unwrap();
        assert_eq!(n, 4 * n_tokens, "{line}");
    }
    // SAE latents are their own models, at the TopK layers only (layers 0 and 1 of 3).
    assert!(per_token.contains("dense-sae,0,") && per_token.contains("dense-sae-seed2,1,"));
    assert!(!per_token.contains("dense-sae,2,"), "{per_token}");
    // Stability compares TopK neurons by index and by matching, SAE latents across checkpoints
    // and across seeds; every share is a fraction.
    let methods = sql(
        "SELECT DISTINCT model, comparison, method FROM stability WHERE share_stable BETWEEN 0 AND 1 ORDER BY 1, 2, 3",
    );
    for row in [
        "dense-sae,checkpoints,matched",
        "dense-sae-seed2,seeds,matched",
        "topk,checkpoints,index",
        "topk,checkpoints,matched",
    ] {
        assert!(methods.contains(row), "{row} missing from\n{methods}");
    }
    // SAE quality: one row per SAE, L0 = k.
    let quality = sql("SELECT COUNT(*) AS n, MIN(l0) AS lo, MAX(l0) AS hi FROM sae_quality");
    // 7 checkpoints × 2 layers, and the last checkpoint again with the second seed.
    assert_eq!(quality.lines().nth(1).unwrap(), "16,4.0,4.0", "{quality}");
    // Checkpoints: log-spaced then every 10 steps.
    let steps = sql("SELECT DISTINCT step FROM metrics WHERE model = 'topk' ORDER BY step");
    assert_eq!(
        steps.lines().skip(1).collect::<Vec<_>>(),
        vec!["0", "1", "2", "4", "8", "10", "20"]
    );

    // Token entropy of every neuron of one recorded layer, recomputed here in plain Rust from
    // the raw rows, equals the SQL table.
    let raw = sql(
        "SELECT a.neuron, t.token_id, a.value FROM activations a JOIN tokens t ON a.token_index = t.token_index WHERE a.model = 'topk' AND a.step = 20 AND a.layer = 0",
    );
    let mut weights: std::collections::BTreeMap<u32, std::collections::BTreeMap<u32, f64>> =
        Default::default();
    for line in raw.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (n, t, v): (u32, u32, f64) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        *weights.entry(n).or_default().entry(t).or_default() += v.abs();
    }
    let table = sql(
        "SELECT neuron, entropy_bits FROM token_entropy WHERE model = 'topk' AND step = 20 AND layer = 0 ORDER BY neuron",
    );
    let mut checked = 0;
    for line in table.lines().skip(1) {
        let (n, h) = line.split_once(',').unwrap();
        let w = &weights[&n.parse::<u32>().unwrap()];
        let total: f64 = w.values().sum();
        let expected: f64 = -w
            .values()
            .filter(|x| **x > 0.0)
            .map(|x| (x / total) * (x / total).log2())
            .sum::<f64>();
        let got: f64 = h.parse().unwrap();
        assert!(
            (got - expected).abs() < 1e-4,
            "neuron {n}: SQL {got} vs Rust {expected}"
        );
        checked += 1;
    }
    assert_eq!(checked, weights.len());

    // A missing table names those that exist.
    let o = pipeline(tmp.path(), &fixture(), &["sql", "SELECT * FROM nope"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("activations"), "{}", stderr(&o));

    // The same query on a local Ballista cluster (two executors) gives the same rows.
    let cluster = Cluster::start();
    let url = cluster.url.clone();
    let q = "SELECT model, layer, COUNT(*) AS n, SUM(value) > 0 AS positive FROM activations \
             GROUP BY model, layer ORDER BY model, layer";
    let local = pipeline(tmp.path(), &fixture(), &["sql", q, "--format", "csv"]);
    let distributed = pipeline(
        tmp.path(),
        &fixture(),
        &[
            "sql",
            q,
            "--format",
            "csv",
            "--engine",
            "ballista",
            "--scheduler",
            &url,
        ],
    );
    let shuffle_files = cluster.work_dir.clone();
    assert!(shuffle_files.is_dir(), "{}", shuffle_files.display());
    drop(cluster);
    // Stopped as `kill` stops it, the cluster takes its executors' files with it.
    assert!(
        !shuffle_files.exists(),
        "{} is left",
        shuffle_files.display()
    );
    assert!(distributed.status.success(), "{}", stderr(&distributed));
    assert_eq!(
        String::from_utf8_lossy(&local.stdout),
        String::from_utf8_lossy(&distributed.stdout)
    );
    // Once it is gone, the error names the scheduler and the command fails.
    let o = pipeline(
        tmp.path(),
        &fixture(),
        &[
            "sql",
            "SELECT 1",
            "--engine",
            "ballista",
            "--scheduler",
            &url,
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));

    // Unchanged inputs: every stage is skipped.
    let before =
        std::fs::read(run.join("record/activations/model=topk/step=20/layer=0/part-0000.parquet"))
            .unwrap();
    let again = pipeline(tmp.path(), &fixture(), &["run", "all"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("manifest.json")).unwrap()).unwrap();
    for stage in ["prepare", "train", "sae", "record", "analyze", "report"] {
        assert_eq!(manifest["stages"][stage]["status"], "done", "{stage}");
    }
    let after =
        std::fs::read(run.join("record/activations/model=topk/step=20/layer=0/part-0000.parquet"))
            .unwrap();
    assert_eq!(before, after);
}

#[test]
fn bad_input_fails_with_a_named_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-corpus");
    let out = pipeline(tmp.path(), &missing, &["prepare"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no-such-corpus") && err.lines().count() <= 2,
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(
        !tmp.path().join("e2e").exists(),
        "run directory was created"
    );

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"fine\"}\n{\"txt\": \"wrong field\"}\n").unwrap();
    let out = pipeline(tmp.path(), &bad, &["prepare"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bad.jsonl:2"), "{}", stderr(&out));
    assert!(!tmp.path().join("e2e").exists());
}

#[test]
fn a_second_process_on_the_same_run_is_refused_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["prepare"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("e2e");
    let manifest = std::fs::read(run.join("manifest.json")).unwrap();
    let tokens = std::fs::read(run.join("prepare/tokens.parquet")).unwrap();

    // This process plays the first pipeline, in the middle of a stage.
    let lock = std::fs::File::options()
        .write(true)
        .open(run.join(".lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["prepare", "--force"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("another pipeline process") && err.contains(".lock"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read(run.join("manifest.json")).unwrap(), manifest);
    assert_eq!(
        std::fs::read(run.join("prepare/tokens.parquet")).unwrap(),
        tokens
    );

    drop(lock);
    let out = pipeline(tmp.path(), &fixture(), &["prepare", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn config_show_applies_overrides_and_rejects_bad_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &["config", "show", "--set", "train.lr=0.5"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("lr = 0.5") && text.contains("topk_k = 4"),
        "{text}"
    );
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &["config", "show", "--set", "record.k=999"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("record.k"), "{}", stderr(&out));

    // --backend is --set run.backend; one this build lacks is named with what to do.
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &["config", "show", "--backend", "flex"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("backend = \"flex\"")
    );
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &["config", "show", "--backend", "tpu"],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("run.backend") && err.contains("tpu"), "{err}");
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    // Chromium's singleton socket folder goes with the profile, not into /tmp.
    cmd.env("TMPDIR", profile);
    cmd
}

#[test]
fn the_report_renders_in_a_real_browser() {
    let Some(browser) = chromium_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["run", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = tmp.path().join("e2e/report");
    let index = report.join("index.html");
    let profile = tmp.path().join("profile");

    let dom = headless(&browser, &profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", index.display()))
        .output()
        .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    let logs = String::from_utf8_lossy(&dom.stderr);
    // Every image loaded (the page's own check writes loaded/total on <body>).
    let images = html
        .split("data-images=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the page's image check ran");
    let (loaded, total) = images.split_once('/').unwrap();
    assert!(
        total.parse::<usize>().unwrap() >= 5 && loaded == total,
        "images {images}"
    );
    assert!(
        !logs.contains("Uncaught") && !logs.contains("ERR_FILE_NOT_FOUND"),
        "{logs}"
    );

    // Every neuron link leads to a page that renders.
    let links: Vec<&str> = html
        .split("href=\"neurons/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect();
    assert!(!links.is_empty());
    for link in &links {
        assert!(report.join("neurons").join(link).exists(), "{link}");
    }
    let page = headless(&browser, &profile)
        .arg("--dump-dom")
        .arg(format!(
            "file://{}",
            report.join("neurons").join(links[0]).display()
        ))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&page.stdout).contains("Top activating contexts"));

    // A screenshot for people to look at.
    let shot = report.join("screenshot.png");
    let status = headless(&browser, &profile)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,2400")
        .arg(format!("file://{}", index.display()))
        .status()
        .unwrap();
    assert!(status.success() && std::fs::metadata(&shot).unwrap().len() > 10_000);
    let keep = std::env::temp_dir().join("pipeline-report-screenshot.png");
    std::fs::copy(&shot, &keep).unwrap();
    eprintln!("screenshot: {}", keep.display());
}

/// A Hugging Face checkpoint series (the reference fixtures of `model/tests/hf.rs`) goes
/// through every stage: imported by `train`, recorded with exactly k rows per token, analysed,
/// steered and reported; a series of mixed families is refused.
#[test]
fn a_hugging_face_series_runs_through_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let hf = repo().join("tests/fixtures/hf");
    let source = format!("load.source={:?}", hf.display().to_string());
    let tokenizer = format!(
        "data.tokenizer={:?}",
        hf.join("llama/step0/tokenizer.json").display().to_string()
    );
    let mut args = vec!["run", "all"];
    let sets = [
        source.as_str(),
        tokenizer.as_str(),
        "models=[\"gpt_neox-sequential-topk\", \"llama\"]",
        "sae.enabled=false",
        "model.vocab_size=96",
        "model.n_heads=4",
        "model.topk_k=8",
        "steer.concepts=[\"noun.animal\"]",
        "steer.max_new_tokens=4",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let out = pipeline(tmp.path(), &fixture(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = tmp.path().join("e2e");
    for step in [0, 1000, 2000] {
        let cp = format!("train/llama/checkpoints/step-{step:07}/model.safetensors");
        assert!(run.join(&cp).exists(), "missing {cp}");
    }
    assert!(run.join("report/index.html").exists());
    // Each revision's hash is in the manifest, equal to its imported checkpoint's.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap();
    let hashes = &manifest["stages"]["train"]["summary"]["llama"]["checkpoint_sha256"];
    for step in [0, 1000, 2000] {
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                run.join(format!("train/llama/checkpoints/step-{step:07}/meta.json")),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(hashes[step.to_string()], meta["sha256"], "step {step}");
    }
    let sql = |q: &str| {
        let o = pipeline(tmp.path(), &fixture(), &["sql", q, "--format", "csv"]);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    // Every token has exactly k = 8 rows in every layer: the TopK layers' own k, and the
    // dense Llama's top 8.
    let counts = sql(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT token_index) AS t FROM activations GROUP BY model, step, layer",
    );
    for line in counts.lines().skip(1) {
        let (n, t) = line.split_once(',').unwrap();
        assert_eq!(
            n.parse::<usize>().unwrap(),
            8 * t.parse::<usize>().unwrap(),
            "{counts}"
        );
    }
    assert_eq!(
        counts.lines().count(),
        1 + 2 * 3 * 3,
        "2 models × 3 steps × 3 layers"
    );
    // The imported model generates.
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &[
            "generate",
            "--model",
            "llama",
            "--prompt",
            "the dog",
            "--max-new-tokens",
            "4",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Mixed families in one series: one line naming both, and nothing imported.
    let mixed = tempfile::tempdir().unwrap();
    let series = mixed.path().join("m");
    for (name, from) in [("step0", "gpt2/step0"), ("step1", "llama/step1000")] {
        std::fs::create_dir_all(series.join(name)).unwrap();
        for e in std::fs::read_dir(hf.join(from)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), series.join(name).join(e.file_name())).unwrap();
        }
    }
    let other = tempfile::tempdir().unwrap();
    let source = format!("load.source={:?}", mixed.path().display().to_string());
    let out = pipeline(
        other.path(),
        &fixture(),
        &[
            "train",
            "--set",
            &source,
            "--set",
            "models=[\"m\"]",
            "--set",
            "sae.enabled=false",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("gpt2") && err.contains("llama") && err.lines().count() <= 3,
        "{err}"
    );
    assert!(!other.path().join("e2e/train/m").exists());
}

#[test]
fn a_second_seed_is_trained_apart_and_matched_to_the_first_at_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let models = r#"models=["topk", "topk-seed2", "dense"]"#;
    let out = pipeline(tmp.path(), &fixture(), &["run", "all", "--set", models]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = |q: &str| sql_rows(tmp.path(), q, &[models]);
    // Another seed: another initialisation, so other weights and another loss curve.
    let losses = csv(
        "SELECT model, val_loss FROM metrics WHERE step = 0 AND model IN ('topk', 'topk-seed2') ORDER BY model",
    );
    assert_eq!(losses.len(), 2);
    assert_ne!(
        losses[0].split(',').nth(1),
        losses[1].split(',').nth(1),
        "{losses:?}"
    );
    // Matched to `topk` at every step both have, in every layer, one row each.
    let steps = csv("SELECT DISTINCT step FROM neuron_stats WHERE model = 'topk' ORDER BY step");
    let rows = csv(
        "SELECT layer, step, step_prev = step, model_prev, n_alive, share_stable FROM stability \
         WHERE model = 'topk-seed2' AND comparison = 'seeds' ORDER BY layer, step",
    );
    assert_eq!(rows.len(), 3 * steps.len(), "{rows:?}");
    for r in &rows {
        let f: Vec<&str> = r.split(',').collect();
        assert_eq!((f[2], f[3]), ("true", "topk"), "{r}");
        let share: f64 = f[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&share), "{r}");
    }
}

#[test]
fn steering_over_training_has_one_row_per_checkpoint_concept_strength_and_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let all = r#"steer.checkpoints="all""#;
    let out = pipeline(tmp.path(), &fixture(), &["run", "all", "--set", all]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = |q: &str| sql_rows(tmp.path(), q, &[all]);
    let prompts = std::fs::read_to_string(repo().join("data/prompts.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let strengths = 5; // the default steer.strengths: 0, 1, 2, 4, 8
    // Every (model, step, concept) evaluated has each (strength, prompt) exactly once.
    let groups = csv(
        "SELECT model, step, concept, COUNT(*) AS n, COUNT(DISTINCT strength * 1000 + prompt_id) AS d \
         FROM steering GROUP BY model, step, concept",
    );
    assert!(!groups.is_empty());
    for g in &groups {
        let f: Vec<&str> = g.split(',').collect();
        assert_eq!(f[3], (strengths * prompts).to_string(), "{g}");
        assert_eq!(f[3], f[4], "{g}");
    }
    // More than the last checkpoint, up to every one of each model.
    let steps =
        csv("SELECT model, COUNT(DISTINCT step) FROM steering GROUP BY model ORDER BY model");
    let trained = csv("SELECT model, COUNT(*) FROM metrics GROUP BY model ORDER BY model");
    assert_eq!(steps.len(), trained.len(), "{steps:?} {trained:?}");
    for (s, t) in steps.iter().zip(&trained) {
        let (s, t): (usize, usize) = (
            s.split(',').nth(1).unwrap().parse().unwrap(),
            t.split(',').nth(1).unwrap().parse().unwrap(),
        );
        assert!(s > 1 && s <= t, "{steps:?} {trained:?}");
    }
    assert!(
        tmp.path()
            .join("e2e/report/figures/steerability.png")
            .exists()
    );
}

#[test]
fn entropy_intervals_agree_with_layer_summary_pair_topk_with_dense_and_are_seeded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["run", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = |q: &str| -> Vec<Vec<String>> {
        sql_rows(tmp.path(), q, &[])
            .iter()
            .map(|l| l.split(',').map(str::to_owned).collect())
            .collect()
    };
    // The observed medians are layer_summary's (computed by SQL), to rounding.
    let rows = csv(
        "SELECT i.median, CASE WHEN i.measure = 'token' THEN s.token_entropy_median \
         ELSE s.semantic_entropy_median END, i.lo <= i.hi, i.resamples \
         FROM entropy_intervals i JOIN layer_summary s \
         ON s.model = i.model AND s.step = i.step AND s.layer = i.layer",
    );
    assert!(!rows.is_empty());
    for r in &rows {
        let (a, b): (f64, f64) = (r[0].parse().unwrap(), r[1].parse().unwrap());
        assert!((a - b).abs() < 1e-9, "{r:?}");
        assert_eq!((r[2].as_str(), r[3].as_str()), ("true", "200"), "{r:?}");
    }
    // topk − dense for both measures in each of the 3 layers, at the last step.
    let diffs = csv(
        "SELECT model, baseline, step, COUNT(*) FROM entropy_differences GROUP BY model, baseline, step",
    );
    assert_eq!(diffs, vec![vec!["topk", "dense", "20", "6"]]);
    // Seeded: a second analysis gives the same intervals.
    let before = csv("SELECT * FROM entropy_differences ORDER BY measure, layer");
    let out = pipeline(tmp.path(), &fixture(), &["analyze", "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        before,
        csv("SELECT * FROM entropy_differences ORDER BY measure, layer")
    );
}

#[test]
fn warm_started_saes_are_their_own_model_and_start_from_the_previous_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let warm = "sae.warm_start=true";
    let out = pipeline(tmp.path(), &fixture(), &["run", "all", "--set", warm]);
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = |q: &str| sql_rows(tmp.path(), q, &[warm]);
    // Every dense checkpoint has a warm SAE per layer, recorded like any model.
    let counts = csv(
        "SELECT model, COUNT(*) FROM sae_quality WHERE model IN ('dense-sae', 'dense-sae-warm') \
         GROUP BY model ORDER BY model",
    );
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert_eq!(
        counts[0].split(',').nth(1),
        counts[1].split(',').nth(1),
        "{counts:?}"
    );
    let steps = csv("SELECT COUNT(DISTINCT step) FROM activations WHERE model = 'dense-sae-warm'");
    let dense = csv("SELECT COUNT(DISTINCT step) FROM activations WHERE model = 'dense'");
    assert_eq!(steps, dense);
    // Each warm SAE file but the first says it started from its predecessor.
    let series = tmp.path().join("e2e/sae/dense-sae-warm");
    let mut files: Vec<_> = walk(&series);
    files.sort();
    let warm_flags: Vec<bool> = files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            String::from_utf8_lossy(&bytes[..4096.min(bytes.len())])
                .contains("\\\"warm_start\\\":\\\"true\\\"")
        })
        .collect();
    assert!(
        warm_flags.iter().filter(|w| !**w).count() <= 2,
        "{warm_flags:?}"
    ); // step 0's layers
    assert!(warm_flags.iter().filter(|w| **w).count() >= files.len() - 2);
    // Matched from one checkpoint to the next like the other series, in every layer.
    let pairs = csv(
        "SELECT COUNT(*) FROM stability WHERE model = 'dense-sae-warm' AND comparison = 'checkpoints' AND method = 'matched'",
    );
    let cold = csv(
        "SELECT COUNT(*) FROM stability WHERE model = 'dense-sae' AND comparison = 'checkpoints' AND method = 'matched'",
    );
    assert_eq!(pairs, cold);
    assert_ne!(pairs, vec!["0".to_owned()]);
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "safetensors") {
            out.push(p);
        }
    }
    out
}
