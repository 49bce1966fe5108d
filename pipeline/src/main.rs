//! `pipeline`: parses the command line and dispatches to the library (`pipeline::…`): a stage,
//! a query, generation, a benchmark.

use anyhow::{Result, bail};
use clap::Parser;

use pipeline::cli::{Cli, ClusterAction, Command, ConfigAction};
use pipeline::config::{self, PipelineConfig};
use pipeline::stages::{Ctx, Stage};
use pipeline::ui::{self, Ui};
use pipeline::{bench, cluster, manifest, serve, sql, steer};

fn main() {
    // A bug must not greet the user with a backtrace: say what happened and how to report it.
    std::panic::set_hook(Box::new(|info| {
        // `pipeline config show | head -1`: the reader left; that is not a bug.
        if info.to_string().contains("failed printing to stdout") {
            std::process::exit(0);
        }
        eprintln!("error: internal error ({info}); please report it with the command you ran");
    }));
    let cli = Cli::parse();
    ui::init_logging(cli.global.verbose, cli.global.json, cli.global.quiet);
    if let Err(err) = run(cli) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    // --backend, --engine and --scheduler are shorthands for --set; explicit --set wins.
    let mut sets: Vec<String> = [
        ("run.backend", &g.backend),
        ("engine.kind", &g.engine),
        ("engine.scheduler", &g.scheduler),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}=\"{v}\"")))
    .collect();
    sets.extend(g.sets.iter().cloned());
    let cfg = PipelineConfig::load(g.config.as_deref(), &sets)?;
    let ui = Ui {
        quiet: g.quiet,
        json: g.json,
    };
    let ctx = Ctx {
        layout: queries::layout::RunLayout::new(cfg.run_dir()),
        cfg,
        force: g.force,
        ui,
        holds_lock: false,
    };
    match cli.command {
        Command::Run { stage } if stage == "all" => {
            // One lock for the whole run: no other process's stage slips in between ours.
            let _lock = ctx.lock_run()?;
            let ctx = Ctx {
                holds_lock: true,
                ..ctx.clone()
            };
            for s in Stage::ALL {
                s.run(&ctx)?;
            }
            let report = ctx.layout.report_index();
            if report.exists() && !g.quiet {
                println!("report: {}", report.display());
            }
            Ok(())
        }
        Command::Run { stage } => run_stage(&ctx, stage.parse()?),
        Command::Prepare => run_stage(&ctx, Stage::Prepare),
        Command::Train => run_stage(&ctx, Stage::Train),
        Command::Sae => run_stage(&ctx, Stage::Sae),
        Command::Record => run_stage(&ctx, Stage::Record),
        Command::Analyze => run_stage(&ctx, Stage::Analyze),
        Command::Report => run_stage(&ctx, Stage::Report),
        Command::Sql(args) => sql::run(&ctx, &args),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Generate(args) => steer::run_generate(&ctx, &args),
        Command::Steer(args) if args.eval => run_stage(&ctx, Stage::Steer),
        Command::Steer(args) => steer::run_steer(&ctx, &args),
        Command::Cluster {
            action: ClusterAction::Start { executors, port },
        } => cluster::start(&ctx, executors, port),
        Command::Config {
            action: ConfigAction::Show,
        } => {
            print!("{}", ctx.cfg.to_toml());
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Init { path },
        } => {
            if path.exists() && !g.force {
                bail!("{} exists; pass --force to overwrite it", path.display());
            }
            manifest::write_atomic(&path, config::commented_toml(&ctx.cfg).as_bytes())?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Command::Bench {
            what,
            rows,
            memory_mib,
            corpus_mib,
            compare,
            on_run,
            repeat,
            lake,
        } => bench::run(
            &ctx,
            what,
            &bench::Options {
                rows,
                memory_limit: memory_mib << 20,
                corpus_bytes: corpus_mib << 20,
                compare_duckdb: compare.is_some(),
                on_run,
                repeat: repeat as usize,
            },
            &lake,
        ),
    }
}

fn run_stage(ctx: &Ctx, stage: Stage) -> Result<()> {
    stage.run(ctx).map(|_| ())
}
