//! `pipeline bench`: speed figures measured side by side in one process, printed (never
//! asserted), so ratios are comparable on a shared, noisy machine.

use std::time::Instant;

use anyhow::Result;
use model::train::{self, SpeedRun, synthetic_tokens};
use queries::tables::activations::ActivationRow;

use crate::cli::{BenchTarget, LakeArgs};
use crate::stages::Ctx;

/// Settings of the benchmarks (the `pipeline bench` flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Activation rows of the generated lake (`analyze`).
    pub rows: usize,
    /// Bytes DataFusion (and DuckDB) may use before spilling (`analyze`).
    pub memory_limit: usize,
    /// Size of the generated corpus (`prepare`).
    pub corpus_bytes: usize,
    /// Also time DuckDB on the same files (`analyze`).
    pub compare_duckdb: bool,
    /// The configured run's lake instead of a generated one (`analyze`).
    pub on_run: bool,
    /// Runs of each engine, alternating; each table's median time is reported (`analyze`).
    pub repeat: usize,
}

/// Runs a benchmark.
pub fn run(ctx: &Ctx, what: BenchTarget, o: &Options, lake: &LakeArgs) -> Result<()> {
    let (rows, memory_limit) = (o.rows, o.memory_limit);
    match what {
        BenchTarget::Prepare => bench_prepare(ctx, o.corpus_bytes),
        BenchTarget::Train => bench_train(ctx),
        BenchTarget::Record => bench_record(ctx),
        BenchTarget::Analyze => bench_analyze(ctx, rows, memory_limit, lake, o),
        BenchTarget::Sae => bench_sae(ctx),
        BenchTarget::Matching => bench_matching(),
        BenchTarget::Serve => crate::serve::bench::run(ctx),
    }
}

/// Feature matching between two recordings of n features (4,096 tokens, 32 active features
/// per token, the second recording a permutation of the first with noise): seconds and memory
/// per n, doubling n until a size takes over a minute; sizes past the config's limit are
/// listed with the memory they would need.
fn bench_matching() -> Result<()> {
    use crate::config::{MAX_MATCHED, matching_bytes};
    let (tokens, k) = (4096u32, 32usize);
    println!("matching: {tokens} tokens, {k} active features per token");
    println!(
        "{:>8} {:>10} {:>14} {:>14}",
        "features", "seconds", "matrices MiB", "peak RSS MiB"
    );
    let mut n = 512;
    while n <= MAX_MATCHED {
        let mut rng = model::SplitMix64::new(11, n as u64);
        let perm: Vec<usize> = {
            let mut p: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                p.swap(i, rng.below(i + 1));
            }
            p
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for t in 0..tokens {
            for _ in 0..k {
                let f = rng.below(n).min(rng.below(n)); // skewed: low ids fire more
                let v = 1.0 + rng.below(1000) as f32 / 1000.0;
                let row = |neuron: usize, value| ActivationRow {
                    neuron: neuron as u16,
                    token_index: t,
                    value,
                };
                a.push(row(f, v));
                b.push(row(perm[f], v + rng.below(100) as f32 / 1000.0));
            }
        }
        // By token, as the matching reads them.
        a.sort_by_key(|r| (r.token_index, r.neuron));
        b.sort_by_key(|r| (r.token_index, r.neuron));
        let started = Instant::now();
        let matches = queries::stability::match_features(&a, &b, n);
        let seconds = started.elapsed().as_secs_f64();
        let recovered = matches
            .iter()
            .filter(|m| m.alive_prev && perm[m.prev] == m.next)
            .count();
        println!(
            "{n:>8} {seconds:>10.2} {:>14.0} {:>14.0}   ({recovered} of the alive features matched to their permuted index)",
            matching_bytes(n) as f64 / (1 << 20) as f64,
            peak_rss_mib().unwrap_or(f64::NAN)
        );
        if seconds > 60.0 {
            println!("(larger sizes skipped: the time grows as n³)");
            break;
        }
        n *= 2;
    }
    for n in [MAX_MATCHED * 2, MAX_MATCHED * 8] {
        println!(
            "{n:>8}    refused by the config: its matrices would take {:.1} GiB",
            matching_bytes(n) as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}

/// SAE training tokens/s at the configured shape (and at 8×), the cost of collecting the
/// hidden states, and, when the run has done its `sae` stage, that stage's share of the run.
fn bench_sae(ctx: &Ctx) -> Result<()> {
    use crate::saes::collect_hidden;
    use model::sae::{SaeConfig, train_sae};
    let device = ctx.cfg.run.backend.device()?;
    let lm = ctx.cfg.model_config("dense", ctx.cfg.model.vocab_size);
    device.seed(1);
    let model = lm.init(&device);
    let tokens = synthetic_tokens(lm.vocab_size, 200_000, 5);
    let sae = &ctx.cfg.sae;
    let started = Instant::now();
    let hidden = collect_hidden(&model, &lm, &tokens, &[0], sae.train_tokens, 1, &device)?;
    let collect = sae.train_tokens as f64 / started.elapsed().as_secs_f64();
    println!(
        "sae bench: backend {}, d_model {}, k = {}, {} steps × {} hidden states",
        ctx.cfg.run.backend.name(),
        lm.d_model,
        ctx.cfg.model.topk_k,
        sae.steps,
        sae.batch_size
    );
    println!("  collect hidden states (LM forward): {collect:>9.0} tokens/s");
    for expansion in [sae.expansion, 8] {
        let shape = SaeConfig {
            d_in: lm.d_model,
            d_sae: expansion * lm.d_model,
            k: ctx.cfg.model.topk_k,
        };
        let out = train_sae(&shape, &sae.training(1), &hidden[0], &device, &mut |_| {})?;
        println!(
            "  train SAE {expansion:>2}× ({:>5} latents):    {:>9.0} tokens/s ({:.2} s per SAE)",
            shape.d_sae,
            out.tokens_per_second,
            (sae.steps * sae.batch_size) as f64 / out.tokens_per_second
        );
    }
    if let Ok(manifest) = crate::manifest::Manifest::load(&ctx.layout) {
        let total: f64 = manifest.stages.values().map(|s| s.seconds).sum();
        if let Some(stage) = manifest.stages.get("sae").filter(|_| total > 0.0) {
            println!(
                "  run {}: the sae stage took {:.1} s of {:.1} s over all stages ({:.1}%)",
                ctx.cfg.run.name,
                stage.seconds,
                total,
                100.0 * stage.seconds / total
            );
        }
    }
    Ok(())
}

/// Estimated peak f32 FLOP/s: cores × clock × FLOP per cycle, 32 (two 8-wide FMA units)
/// or, where the CPU has AVX-512, 64 (two 16-wide ones, as on AMD Zen 5 and Intel server
/// cores; an over-estimate for CPUs that split 512-bit operations in two).
fn peak_flops() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    let avx512 = info
        .lines()
        .find(|l| l.starts_with("flags"))
        .is_some_and(|l| l.split_whitespace().any(|f| f == "avx512f"));
    let flop_per_cycle = if avx512 { 64.0 } else { 32.0 };
    let cores = std::thread::available_parallelism().ok()?.get() as f64;
    Some(cores * mhz * 1e6 * flop_per_cycle)
}

fn bench_train(ctx: &Ctx) -> Result<()> {
    let device = ctx.cfg.run.backend.device()?;
    let topk = ctx.cfg.model_config("topk", ctx.cfg.model.vocab_size);
    let tokens = synthetic_tokens(topk.vocab_size, 200_000, 7);
    let b = ctx.cfg.train.batch_size;
    let shards = ctx.cfg.train.parallel_shards;
    println!(
        "train bench: backend {}, d_model {}, {} layers ({} TopK, k = {}), context {}, batch {b} in {shards} parallel shards, {} parameters",
        ctx.cfg.run.backend.name(),
        topk.d_model,
        topk.n_layers,
        topk.n_topk_layers(),
        topk.topk_k,
        topk.block_size,
        topk.n_params()
    );
    let speed = train::compare(&topk, b, shards, &tokens, &device, SpeedRun::default());
    println!("{speed}");
    let t = speed.topk;
    // The CPU's peak means nothing for a GPU run.
    let on_cpu = ctx.cfg.run.backend != model::Backend::Wgpu;
    if let Some(peak) = peak_flops().filter(|_| on_cpu) {
        let achieved = 6.0 * topk.n_params() as f64 * t;
        println!(
            "  achieved {:.2} GFLOP/s (6 × params × tokens/s) of an estimated peak {:.0} GFLOP/s: {:.1}%",
            achieved / 1e9,
            peak / 1e9,
            100.0 * achieved / peak
        );
    }
    Ok(())
}

fn bench_record(ctx: &Ctx) -> Result<()> {
    use crate::recording::{Recorder, Window};
    let device = ctx.cfg.run.backend.device()?;
    let cfg = ctx.cfg.model_config("topk", ctx.cfg.model.vocab_size);
    device.seed(1);
    let model = cfg.init(&device);
    let n_windows = 256;
    let tokens = synthetic_tokens(cfg.vocab_size, n_windows * cfg.block_size, 3);
    let windows: Vec<Window> = tokens
        .chunks(cfg.block_size)
        .enumerate()
        .map(|(i, c)| Window {
            first: (i * cfg.block_size) as u32,
            ids: c.to_vec(),
        })
        .collect();
    let dir = tempfile::tempdir()?;
    let k = ctx.cfg.record_k();
    let recorder = Recorder {
        out: dir.path().to_owned(),
        k,
        batch_size: ctx.cfg.record.batch_size,
        rows_per_file: crate::recording::ROWS_PER_FILE,
        value_type: crate::config::ValueType::F32,
        run_id: "bench".into(),
        device: device.clone(),
        inputs_key: String::new(),
    };
    let mut forward = 0.0;
    let mut all_rows: Vec<Vec<ActivationRow>> = vec![Vec::new(); cfg.n_layers];
    for chunk in windows.chunks(ctx.cfg.record.batch_size) {
        let started = Instant::now();
        let rows = recorder.forward_topk(&model, chunk, &cfg)?;
        forward += started.elapsed().as_secs_f64();
        for (l, r) in rows.into_iter().enumerate() {
            all_rows[l].extend(r);
        }
    }
    let n_tokens = tokens.len() as f64;
    let dense_size = cfg.d_model as f64 * 4.0;
    println!(
        "record bench: {} tokens × {} layers, k = {k}, d_model {}",
        tokens.len(),
        cfg.n_layers,
        cfg.d_model
    );
    println!("  forward: {:.0} tokens/s", n_tokens / forward);
    for f16 in [false, true] {
        let (mut write, mut rows_total, mut bytes) = (0.0, 0usize, 0u64);
        for (l, rows) in all_rows.iter().enumerate() {
            let started = Instant::now();
            let mut rows = rows.clone();
            crate::recording::recorder::sort_by_neuron_then_token(&mut rows);
            let path = dir.path().join(format!("layer={l}-{f16}.parquet"));
            let batch = queries::tables::activations::encode(&rows, false, f16)?;
            rows_total += queries::parquet_io::write_parquet(&path, batch.schema(), &[batch], &[])?;
            write += started.elapsed().as_secs_f64();
            bytes += std::fs::metadata(&path)?.len();
        }
        let per_token_layer = bytes as f64 / (n_tokens * cfg.n_layers as f64);
        println!(
            "  values as {}: writing {:.0} rows/s, adds {:.1}% to the forward pass (target ≤ 20%)",
            if f16 { "f16" } else { "f32" },
            rows_total as f64 / write,
            100.0 * write / forward
        );
        println!(
            "    on disk {per_token_layer:.1} bytes per token per layer vs {dense_size:.0} dense float32: 1/{:.1} (target ≤ 1/8 for k/d_model ≤ 1/8)",
            dense_size / per_token_layer
        );
    }
    Ok(())
}

/// `prepare` on a generated corpus of `bytes` (documents drawn at random from the configured
/// corpus, written as one `.txt` file): the BPE pass and the tokenising pass timed apart, the
/// cores they kept busy, and the peak memory, which stays bounded whatever the corpus size.
fn bench_prepare(ctx: &Ctx, bytes: usize) -> Result<()> {
    use std::io::Write;
    let tmp = tempfile::tempdir()?;
    let corpus = tmp.path().join("corpus.txt");
    let source = crate::corpus::read_corpus(
        &crate::config::bundled(&ctx.cfg.data.corpus),
        &ctx.cfg.data.text_field,
    )?;
    let mut rng = model::SplitMix64::new(ctx.cfg.data.seed, 0xc0de);
    let started = Instant::now();
    let mut out = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&corpus)?);
    let mut written = 0usize;
    while written < bytes {
        let doc = &source[rng.below(source.len())].text;
        out.write_all(doc.as_bytes())?;
        out.write_all(b"\n\n")?;
        written += doc.len() + 2;
    }
    out.flush()?;
    drop(out);
    println!(
        "prepare: generated {:.2} GiB of text in {:.0} s ({})",
        written as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64(),
        corpus.display()
    );
    let lex = crate::lexicon::Lexicon::load(&crate::config::bundled(&ctx.cfg.data.lexicon))?;
    let mut cfg = ctx.cfg.clone();
    cfg.data.corpus = corpus.clone();
    let run_ctx = Ctx {
        layout: queries::layout::RunLayout::new(tmp.path().join("run")),
        cfg,
        ..ctx.clone()
    };
    reset_peak_rss();
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let hashed = crate::manifest::hash_path(&corpus)?;
    let hash_s = t0.elapsed().as_secs_f64();
    // The BPE pass alone, then the whole stage with that tokenizer given (no second BPE).
    let (cpu1, t1) = (cpu_seconds(), Instant::now());
    let tokenizer = crate::stages::prepare::tokenizer_for(&run_ctx, &corpus)?;
    let (bpe_s, cpu2) = (t1.elapsed().as_secs_f64(), cpu_seconds());
    let given = tmp.path().join("tokenizer.json");
    crate::tokenize::save(&tokenizer, &given)?;
    let mut run_ctx = run_ctx;
    run_ctx.cfg.data.tokenizer = given;
    let (cpu5, t5) = (cpu_seconds(), Instant::now());
    let d = &run_ctx.cfg.data;
    let survey = crate::preparation::survey(&corpus, &d.text_field, d.seed, d.val_fraction)?;
    let (survey_s, cpu6) = (t5.elapsed().as_secs_f64(), cpu_seconds());
    let (cpu3, t3) = (cpu_seconds(), Instant::now());
    let summary = crate::stages::prepare::prepare(&run_ctx, &corpus, &lex, &survey)?;
    let (prep_s, cpu4) = (t3.elapsed().as_secs_f64(), cpu_seconds());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mib_s = |s: f64| written as f64 / (1 << 20) as f64 / s;
    println!(
        "  input hash (sha256 {}…): {hash_s:.1} s, {:.0} MiB/s, {:.1} cores",
        &hashed[..8],
        mib_s(hash_s),
        (cpu1 - cpu0) / hash_s
    );
    println!(
        "  survey pass (every document parsed, counted and split before anything is written): {survey_s:.1} s, {:.0} MiB/s, {:.1} cores",
        mib_s(survey_s),
        (cpu6 - cpu5) / survey_s
    );
    println!(
        "  BPE training pass: {bpe_s:.1} s, {:.1} MiB/s, {:.1} of {cores} cores busy",
        mib_s(bpe_s),
        (cpu2 - cpu1) / bpe_s
    );
    println!(
        "  tokenise and write pass: {prep_s:.1} s, {:.1} MiB/s, {:.1} of {cores} cores busy",
        mib_s(prep_s),
        (cpu4 - cpu3) / prep_s
    );
    println!(
        "  {} documents, {} train tokens, {} evaluation tokens; peak memory {:.0} MiB for {:.0} MiB of text",
        summary.documents,
        summary.train_tokens,
        summary.eval_tokens,
        peak_rss_mib().unwrap_or(f64::NAN),
        written as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Starts a new peak for `peak_rss_mib` (Linux: writing 5 to `clear_refs` resets `VmHWM`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// CPU time (user + system) this process has used, in seconds (Linux `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the name), in clock
    // ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Generates a run with `rows` activation rows (2 models × checkpoints × 4 layers × tokens × k,
/// neurons drawn from a skewed distribution so entropies are not trivial) and times each
/// derived table under a memory limit, so queries must spill rather than fail. With
/// `--engine ballista`, the same tables are then computed on local clusters of 1 and 2
/// executors, and the ratio to in-process DataFusion printed.
fn bench_analyze(
    ctx: &Ctx,
    rows: usize,
    memory_limit: usize,
    lake: &LakeArgs,
    o: &Options,
) -> Result<()> {
    use queries::engine::Engine;
    let dir = tempfile::tempdir()?;
    let run = dir.path();
    if o.on_run {
        link_run_lake(ctx, run)?;
        println!(
            "analyze bench on the lake of {}; memory limit {} MiB",
            ctx.layout.root().display(),
            memory_limit >> 20
        );
    } else {
        generate_lake(run, rows, memory_limit, lake)?;
    }
    let rt = crate::stages::analyze::runtime()?;
    let params = ctx.cfg.analyze.clone();
    let analyse = |engine: Engine| {
        rt.block_on(async {
            let session = queries::session::open_run(
                run,
                &queries::session::SessionOptions {
                    memory_limit: Some(memory_limit),
                    engine,
                    ..Default::default()
                },
            )
            .await?;
            let n_rows = queries::tables::columns::required::<arrow::datatypes::UInt64Type>(
                &queries::session::collect(&session, "SELECT COUNT(*) AS n FROM activations")
                    .await?,
                "n",
            )?[0] as f64;
            let outputs =
                queries::analysis::run_analysis(&session, run, &params, &[], &mut |_| {}).await?;
            Ok::<_, anyhow::Error>((n_rows, outputs))
        })
    };
    // Each repetition starts from no derived tables, as `analyze` on a fresh run does; the
    // engines alternate, so a slow spell of the machine falls on both.
    let (mut df_runs, mut duckdb_runs, mut n_rows) = (Vec::new(), Vec::new(), 0.0);
    let mut duckdb_version = String::new();
    for _ in 0..o.repeat.max(1) {
        let analyze_dir = queries::layout::RunLayout::new(run).stage_dir("analyze");
        if analyze_dir.exists() {
            std::fs::remove_dir_all(&analyze_dir)?;
        }
        let (rows, outputs) = analyse(Engine::DataFusion)?;
        n_rows = rows;
        df_runs.push(outputs);
        if o.compare_duckdb {
            let (version, tables) = duckdb_times(run, &params, memory_limit)?;
            duckdb_version = version;
            duckdb_runs.push(tables);
        }
    }
    let local = median_outputs(&df_runs)?;
    if df_runs.len() > 1 {
        println!("  median of {} runs of each engine", df_runs.len());
    }
    println!("  DataFusion in this process:");
    for t in &local {
        println!(
            "  {:<17} {:>9} rows out  {:>8.3} s  {:>12.0} input rows/s",
            t.name,
            t.rows,
            t.seconds,
            n_rows / t.seconds
        );
    }
    let local_total: f64 = local.iter().map(|o| o.seconds).sum();
    println!("  {:<17} {:>9}           {local_total:>8.3} s", "all", "");
    if o.compare_duckdb {
        print_comparison(&local, &median_outputs(&duckdb_runs)?, &duckdb_version)?;
    }
    if ctx.cfg.engine.kind == queries::engine::EngineKind::Ballista {
        bench_ballista(&rt, &analyse, &local, local_total)?;
    }
    if let Some(peak) = peak_rss_mib() {
        println!("  peak resident memory of the process: {peak:.0} MiB");
    }
    Ok(())
}

/// A temporary run whose recorded tables are links to the configured run's, so `analyze`
/// reads them and writes its derived tables here, never into the run.
fn link_run_lake(ctx: &Ctx, to: &std::path::Path) -> Result<()> {
    let from = &ctx.layout;
    let links = queries::layout::RunLayout::new(to);
    for (src, dst) in [
        (from.tokens(), links.tokens()),
        (from.activations_dir(), links.activations_dir()),
        (from.neurons_dir(), links.neurons_dir()),
    ] {
        anyhow::ensure!(
            src.exists(),
            "{} does not exist; run `pipeline run all` (or record) first",
            src.display()
        );
        std::fs::create_dir_all(dst.parent().expect("inside the run"))?;
        std::os::unix::fs::symlink(std::path::absolute(&src)?, &dst)?;
    }
    Ok(())
}

/// Writes a generated lake of `rows` activation rows into `run`.
fn generate_lake(
    run: &std::path::Path,
    rows: usize,
    memory_limit: usize,
    lake: &LakeArgs,
) -> Result<()> {
    use queries::synthetic::{LakeSpec, write_lake};
    let spec = LakeSpec {
        d: lake.neurons,
        layers: lake.layers,
        steps: lake.checkpoints,
        models: LakeSpec::with_rows(rows)
            .models
            .into_iter()
            .take(lake.models.clamp(1, 2))
            .collect(),
        ..LakeSpec::with_rows(rows)
    };
    println!(
        "analyze bench: {} activation rows = {} models × {} checkpoints × {} layers × {} tokens × k = {} of {} neurons; memory limit {} MiB",
        spec.models.len() * spec.steps * spec.layers * spec.tokens() * spec.k,
        spec.models.len(),
        spec.steps,
        spec.layers,
        spec.tokens(),
        spec.k,
        spec.d,
        memory_limit >> 20
    );
    let started = Instant::now();
    write_lake(run, &spec)?;
    println!("  generated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Each table's median time over `runs` (rows from the first run; every run must agree).
fn median_outputs(
    runs: &[Vec<queries::analysis::DerivedOutput>],
) -> Result<Vec<queries::analysis::DerivedOutput>> {
    let first = runs.first().ok_or_else(|| anyhow::anyhow!("no run"))?;
    first
        .iter()
        .enumerate()
        .map(|(i, table)| {
            let mut seconds = Vec::with_capacity(runs.len());
            for run in runs {
                let t = &run[i];
                anyhow::ensure!(
                    t.name == table.name && t.rows == table.rows,
                    "{} has {} rows in one run and {} in another",
                    table.name,
                    table.rows,
                    t.rows
                );
                seconds.push(t.seconds);
            }
            seconds.sort_by(f64::total_cmp);
            let mid = seconds.len() / 2;
            let median = if seconds.len() % 2 == 1 {
                seconds[mid]
            } else {
                (seconds[mid - 1] + seconds[mid]) / 2.0
            };
            Ok(queries::analysis::DerivedOutput {
                seconds: median,
                ..table.clone()
            })
        })
        .collect()
}

/// Every derived table computed by DuckDB (`bench/duckdb_analyze.py`) over the files of `run`,
/// with as many threads and as much memory: its version, and per table (in the order of
/// `DERIVED_TABLES`) rows and seconds.
fn duckdb_times(
    run: &std::path::Path,
    params: &queries::sql::AnalysisParams,
    memory_limit: usize,
) -> Result<(String, Vec<queries::analysis::DerivedOutput>)> {
    let out = tempfile::tempdir()?;
    let layout = queries::layout::RunLayout::new(run);
    let activations = layout.activations_dir();
    let tables: serde_json::Map<String, serde_json::Value> = layout
        .tables()
        .into_iter()
        .chain([(queries::session::ACTIVATIONS_BY_NEURON, activations, true)])
        .filter(|(_, path, _)| path.exists())
        .map(|(name, path, partitioned)| {
            let path = std::path::absolute(&path).unwrap_or(path);
            (
                name.to_owned(),
                serde_json::json!({"path": path, "partitioned": partitioned}),
            )
        })
        .collect();
    let derived: Vec<serde_json::Value> = queries::sql::DERIVED_TABLES
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "sql": params.render(t.sql).replace("{{slice}}", "TRUE"),
            })
        })
        .collect();
    let spec = serde_json::json!({
        "threads": std::thread::available_parallelism().map_or(2, |n| n.get()),
        "memory_mib": memory_limit >> 20,
        "tables": tables,
        "views": queries::session::VIEWS,
        "derived": derived,
        "out_dir": out.path(),
    });
    let spec_path = out.path().join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec)?)?;
    // Part of the source tree, found from any working directory.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/duckdb_analyze.py");
    let result = std::process::Command::new("python3")
        .arg(&script)
        .arg(&spec_path)
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run python3 {}: {e}", script.display()))?;
    anyhow::ensure!(
        result.status.success(),
        "{} failed (is DuckDB installed? `pip install duckdb`):\n{}",
        script.display(),
        String::from_utf8_lossy(&result.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&result.stdout)?;
    let tables = queries::sql::DERIVED_TABLES
        .iter()
        .map(|t| {
            let d = &answer["tables"][t.name];
            queries::analysis::DerivedOutput {
                name: t.name,
                rows: d["rows"].as_u64().unwrap_or(0) as usize,
                seconds: d["seconds"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect();
    Ok((answer["duckdb"].as_str().unwrap_or("?").to_owned(), tables))
}

/// DataFusion's time beside DuckDB's, table by table, with the ratios' median and maximum.
fn print_comparison(
    local: &[queries::analysis::DerivedOutput],
    duckdb: &[queries::analysis::DerivedOutput],
    version: &str,
) -> Result<()> {
    println!("  DuckDB {version} over the same files, same threads and memory limit:");
    println!(
        "  {:<17} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "table", "rows", "rows DDB", "DataFusion", "DuckDB", "ratio"
    );
    // Tables that take milliseconds measure each engine's fixed cost per statement (planning,
    // one small file), not its scans and aggregations: their ratio is reported apart.
    const SUBSTANTIVE_SECONDS: f64 = 0.1;
    let (mut ratios, mut substantive, mut differ) = (Vec::new(), Vec::new(), Vec::new());
    for (o, d) in local.iter().zip(duckdb) {
        let ratio = o.seconds / d.seconds;
        ratios.push(ratio);
        if d.rows != o.rows {
            differ.push(format!("{} ({} rows against {})", o.name, o.rows, d.rows));
        }
        if o.seconds.max(d.seconds) >= SUBSTANTIVE_SECONDS {
            substantive.push(ratio);
        }
        println!(
            "  {:<17} {:>9} {:>9} {:>9.3}s {:>9.3}s {:>6.2}×",
            o.name, o.rows, d.rows, o.seconds, d.seconds, ratio
        );
    }
    ratios.sort_by(f64::total_cmp);
    let total_df: f64 = local.iter().map(|o| o.seconds).sum();
    let total_ddb: f64 = duckdb.iter().map(|o| o.seconds).sum();
    println!(
        "  all: DataFusion {total_df:.1} s, DuckDB {total_ddb:.1} s ({:.2}×); ratio median {:.2}×, max {:.2}×",
        total_df / total_ddb,
        ratios[ratios.len() / 2],
        ratios.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  tables taking at least {SUBSTANTIVE_SECONDS} s in either engine ({} of {}): max ratio {:.2}×",
        substantive.len(),
        ratios.len(),
        substantive.iter().copied().fold(f64::NAN, f64::max)
    );
    anyhow::ensure!(
        differ.is_empty(),
        "DataFusion and DuckDB disagree on {}",
        differ.join(", ")
    );
    Ok(())
}

/// The analysis on local Ballista clusters of 1 and 2 executors (each with the machine's
/// cores as task slots), table by table against the in-process times.
#[cfg(feature = "ballista")]
fn bench_ballista(
    rt: &tokio::runtime::Runtime,
    analyse: &dyn Fn(
        queries::engine::Engine,
    ) -> Result<(f64, Vec<queries::analysis::DerivedOutput>)>,
    local: &[queries::analysis::DerivedOutput],
    local_total: f64,
) -> Result<()> {
    use queries::cluster::{ClusterOptions, start_local};
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    for executors in [1, 2] {
        let cluster = rt.block_on(start_local(&ClusterOptions {
            executors,
            scheduler_port: 0,
            task_slots: cores,
        }))?;
        let (_, outputs) = analyse(queries::engine::Engine::Ballista {
            scheduler: cluster.url(),
            force_remote_read: false,
        })?;
        println!("  Ballista, {executors} local executor(s) of {cores} task slots:");
        for (o, l) in outputs.iter().zip(local) {
            println!(
                "  {:<17} {:>9} rows out  {:>7.1} s  {:>5.2}× DataFusion's time",
                o.name,
                o.rows,
                o.seconds,
                o.seconds / l.seconds
            );
        }
        let total: f64 = outputs.iter().map(|o| o.seconds).sum();
        println!(
            "  {:<17} {:>9}           {total:>7.1} s  {:>5.2}×",
            "all",
            "",
            total / local_total
        );
        // A speed comparison means nothing if the engines disagree.
        let differ: Vec<String> = outputs
            .iter()
            .zip(local)
            .filter(|(o, l)| o.rows != l.rows)
            .map(|(o, l)| format!("{} ({} rows against {})", o.name, o.rows, l.rows))
            .collect();
        anyhow::ensure!(
            differ.is_empty(),
            "Ballista and DataFusion disagree on {}",
            differ.join(", ")
        );
    }
    Ok(())
}

#[cfg(not(feature = "ballista"))]
fn bench_ballista(
    _: &tokio::runtime::Runtime,
    _: &dyn Fn(queries::engine::Engine) -> Result<(f64, Vec<queries::analysis::DerivedOutput>)>,
    _: &[queries::analysis::DerivedOutput],
    _: f64,
) -> Result<()> {
    Err(queries::Error::EngineNotBuilt.into())
}

#[cfg(test)]
mod tests {
    use super::median_outputs;
    use queries::analysis::DerivedOutput;

    fn run(seconds: [f64; 2]) -> Vec<DerivedOutput> {
        vec![
            DerivedOutput {
                name: "a",
                rows: 3,
                seconds: seconds[0],
            },
            DerivedOutput {
                name: "b",
                rows: 5,
                seconds: seconds[1],
            },
        ]
    }

    #[test]
    fn each_tables_median_over_runs() {
        let odd = median_outputs(&[run([3.0, 0.1]), run([1.0, 0.3]), run([2.0, 0.2])]).unwrap();
        assert_eq!((odd[0].seconds, odd[1].seconds), (2.0, 0.2));
        assert_eq!((odd[0].rows, odd[1].rows), (3, 5));
        let even = median_outputs(&[run([4.0, 1.0]), run([1.0, 2.0])]).unwrap();
        assert_eq!((even[0].seconds, even[1].seconds), (2.5, 1.5));
    }

    #[test]
    fn runs_that_disagree_on_rows_are_an_error() {
        let mut other = run([1.0, 1.0]);
        other[1].rows = 6;
        let e = median_outputs(&[run([1.0, 1.0]), other]).unwrap_err();
        assert!(e.to_string().contains("b has 5 rows"), "{e}");
    }
}
