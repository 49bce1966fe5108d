//! `pipeline serve` end to end: the built binary serves a finished fixture run; every endpoint
//! answers good requests with the run's data and bad ones with a 4xx and a message; nothing
//! outside the page and the API is reachable; and in a real browser a researcher can search,
//! open a neuron, move the checkpoint slider, steer and query.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};

use common::browser::{Browser, chromium_or_skip};
use common::{Cluster, command, fixture, pipeline, sql_rows, stderr};
use serde_json::Value;

/// A `pipeline serve` process on a free port, stopped with Ctrl-C (SIGINT) when dropped.
struct Server {
    child: Child,
    /// `127.0.0.1:PORT`
    addr: String,
}

impl Server {
    fn start(run_dir: &Path) -> Self {
        Self::start_with(run_dir, &[])
    }

    /// With extra arguments (`--engine ballista --scheduler URL`).
    fn start_with(run_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--port", "0"];
        args.extend_from_slice(extra);
        let mut child = command(run_dir, &fixture(), &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// GET `path` (raw: the path is sent exactly as given) → (status, content type, body).
    fn get(&self, path: &str) -> (u16, String, String) {
        let mut s = TcpStream::connect(&self.addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or("")
            .to_owned();
        (status, content_type, body.to_owned())
    }

    /// GET an API path that must answer 200 with JSON.
    fn json(&self, path: &str) -> Value {
        let (status, ct, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        serde_json::from_str(&body).unwrap()
    }

    /// GET an API path that must fail with `status` and a message containing `says`.
    fn refused(&self, path: &str, status: u16, says: &str) {
        let (got, ct, body) = self.get(path);
        assert_eq!(got, status, "{path}: {body}");
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(says), "{path}: {msg}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn finished_run() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let out = pipeline(tmp.path(), &fixture(), &["run", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    tmp
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn every_endpoint_answers_with_the_runs_data_and_refuses_bad_requests() {
    let run = finished_run();
    let server = Server::start(run.path());

    // The page and its two files; everything else is a 404, however the path is spelled.
    let (status, ct, html) = server.get("/");
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(html.contains("/app.js") && html.contains("/app.css"));
    for path in ["/app.js", "/app.css"] {
        assert_eq!(server.get(path).0, 200, "{path}");
    }
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "//etc/passwd",
        "/app.js/../../Cargo.toml",
        "/etc/passwd",
        "/api/../../Cargo.toml",
    ] {
        let (status, _, body) = server.get(path);
        assert_eq!(status, 404, "{path}");
        assert!(
            !body.contains("root:") && !body.contains("[workspace]"),
            "{path}"
        );
    }

    // Overview: the models of the run, their checkpoints (train.steps=20, every 10) and layers.
    let o = server.json("/api/overview");
    let models: Vec<&str> = o["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        models.contains(&"topk") && models.contains(&"dense"),
        "{models:?}"
    );
    let topk = o["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "topk")
        .unwrap();
    let steps: Vec<u64> = topk["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(*steps.last().unwrap(), 20, "{steps:?}");
    assert_eq!(topk["layers"].as_array().unwrap().len(), 3);
    assert!(topk["layers"].as_array().unwrap().iter().all(|n| n == 32));

    // Search by number: neuron 5 of topk in each of its 3 layers at the last step.
    let r = server.json("/api/search?q=5&model=topk");
    assert_eq!(r["kind"], "neuron");
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{r}");
    assert!(rows.iter().all(|x| x["neuron"] == 5 && x["step"] == 20));

    // Search by concept: every row has that top concept, and their number is what SQL counts.
    let concept = server.json(
        "/api/sql?q=SELECT%20top_concept%20FROM%20semantic_entropy%20WHERE%20model%3D'topk'%20AND%20step%3D20%20GROUP%20BY%20top_concept%20ORDER%20BY%20COUNT(*)%20DESC%2C%20top_concept%20LIMIT%201",
    )["rows"][0][0]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server.json(&format!(
        "/api/search?q={}&model=topk&limit=500",
        enc(&concept)
    ));
    assert_eq!(r["kind"], "concept");
    let found = r["rows"].as_array().unwrap();
    assert!(found.iter().all(|x| x["top_concept"] == concept.as_str()));
    let count = server.json(&format!(
        "/api/sql?q={}",
        enc(&format!(
            "SELECT COUNT(*) AS n FROM semantic_entropy WHERE model='topk' AND step=20 AND top_concept='{concept}'"
        ))
    ))["rows"][0][0]
        .as_u64()
        .unwrap();
    assert_eq!(found.len() as u64, count);
    // Filters narrow: only layer 1, entropy at most 0.9.
    let r = server.json(&format!(
        "/api/search?q={}&model=topk&layer=1&max_entropy=0.9",
        enc(&concept)
    ));
    assert!(
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["layer"] == 1 && x["semantic_entropy"].as_f64().unwrap() <= 0.9)
    );

    // Search by word: a word of the evaluation text; scores sorted, in [0, 1].
    let word = server.json(
        "/api/sql?q=SELECT%20LOWER(word)%20AS%20w%20FROM%20tokens%20WHERE%20word%20IS%20NOT%20NULL%20GROUP%20BY%20LOWER(word)%20ORDER%20BY%20COUNT(*)%20DESC%2C%20w%20LIMIT%201",
    )["rows"][0][0]
        .as_str()
        .unwrap()
        .to_owned();
    let r = server.json(&format!("/api/search?q={}&kind=word", enc(&word)));
    let scores: Vec<f64> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["score"].as_f64().unwrap())
        .collect();
    assert!(!scores.is_empty(), "{r}");
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(scores.iter().all(|s| (0.0..=1.0 + 1e-9).contains(s)));

    // The neuron page: the sections agree with the tables.
    let page = server.json("/api/neuron?model=topk&layer=1&neuron=5");
    assert_eq!(page["step"], 20);
    assert_eq!(page["over_steps"].as_array().unwrap().len(), steps.len());
    let n_active = page["over_steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == 20)
        .unwrap()["n_active"]
        .as_u64()
        .unwrap();
    let hist: u64 = page["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["n"].as_u64().unwrap())
        .sum();
    assert_eq!(hist, n_active, "the histogram counts every activation");
    let contexts = page["contexts"].as_array().unwrap();
    assert!(!contexts.is_empty() && contexts.len() <= 10);
    let values: Vec<f64> = contexts
        .iter()
        .map(|c| c["value"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "best first");
    // (doc_id, position, word_index) of every token, to check the windows independently.
    let tokens: Vec<[i64; 3]> = sql_rows(
        run.path(),
        "SELECT doc_id, position, word_index FROM tokens ORDER BY token_index",
        &[],
    )
    .iter()
    .map(|line| {
        let f: Vec<i64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        [f[0], f[1], f[2]]
    })
    .collect();
    let same_word = |a: i64, b: i64| {
        let (Some(x), Some(y)) = (tokens.get(a as usize), tokens.get(b as usize)) else {
            return false;
        };
        x[0] == y[0] && x[2] == y[2]
    };
    for c in contexts {
        // The window around the top token, in text order, contiguous: at least offsets
        // −8..=4 where the document allows, widened so that no word is cut.
        let window = c["tokens"].as_array().unwrap();
        let offsets: Vec<i64> = window
            .iter()
            .map(|t| t["offset"].as_i64().unwrap())
            .collect();
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
        let index = |t: &serde_json::Value| t["token_index"].as_i64().unwrap();
        let (first, last) = (index(&window[0]), index(window.last().unwrap()));
        let centre = first - offsets[0];
        let doc = tokens[centre as usize][0];
        let in_doc = |i: i64| tokens.get(i as usize).is_some_and(|t| t[0] == doc);
        for o in -8..=4 {
            assert!(
                !in_doc(centre + o) || offsets.contains(&o),
                "{o} in {offsets:?}"
            );
        }
        assert!(
            !same_word(first - 1, first),
            "a word cut before {offsets:?}"
        );
        assert!(!same_word(last, last + 1), "a word cut after {offsets:?}");
        let centre = c["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["offset"] == 0)
            .unwrap();
        assert_eq!(
            centre["value"], c["value"],
            "the centre token is the top activation"
        );
    }
    let shares: f64 = page["concepts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["share"].as_f64().unwrap())
        .sum();
    assert!(shares <= 1.0 + 1e-9);
    assert_eq!(page["layers"].as_array().unwrap().len(), 3);
    assert!(page["weights"]["top_promoted"].is_string());
    // The page's per-step queries read one partition of the activations: its (model, step,
    // layer) files, however many checkpoints the run holds.
    let contexts_sql = queries::sql::serve::fill(
        queries::sql::serve::NEURON_CONTEXTS,
        &[
            ("model", "topk".into()),
            ("step", 20usize.into()),
            ("layer", 1usize.into()),
            ("neuron", 5usize.into()),
            ("top_n", 10usize.into()),
            ("before", 8usize.into()),
            ("after", 4usize.into()),
        ],
    );
    let plan = server.json(&format!(
        "/api/sql?q={}",
        enc(&format!("EXPLAIN {contexts_sql}"))
    ));
    let plan = plan["rows"].to_string();
    let partitions: std::collections::BTreeSet<&str> = plan
        .split("activations/")
        .skip(1)
        .map(|s| s.split("/part-").next().unwrap())
        .collect();
    assert_eq!(
        partitions.into_iter().collect::<Vec<_>>(),
        ["model=topk/step=20/layer=1"],
        "{plan}"
    );
    // At another step the contexts are that step's.
    let first = server.json(&format!(
        "/api/neuron?model=topk&layer=1&neuron=5&step={}",
        steps[0]
    ));
    assert_eq!(first["step"], steps[0]);

    // Compare: within a model, every neuron once; its change follows from the two rows.
    let c = server.json(&format!(
        "/api/compare?model_a=topk&step_a={}&layer=1",
        steps[0]
    ));
    assert_eq!(c["neurons"].as_array().unwrap().len(), 32);
    let counted: u64 = c["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 32);
    let c = server.json("/api/compare?model_a=topk&model_b=dense&layer=1");
    assert!(c["neurons"].as_array().unwrap().is_empty());
    assert!(
        c["notices"][0]
            .as_str()
            .unwrap()
            .contains("different models")
    );

    // Steering: reproducible with a seed; an edit of the neuron changes the continuation.
    let steer =
        "/api/steer?model=topk&neurons=1:5&mode=set&strength=8&tokens=12&seed=7&prompt=The%20";
    let a = server.json(steer);
    let b = server.json(steer);
    assert_eq!(a, b, "the same URL gives the same texts");
    let text = |v: &Value| -> String {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect()
    };
    assert!(!text(&a["plain"]).is_empty());
    assert_eq!(a["edits"][0]["layer"], 1);

    // SQL: read-only; results and CSV agree.
    let q = server.json("/api/sql?q=SELECT%20COUNT(*)%20AS%20n%20FROM%20tokens");
    assert_eq!(q["columns"][0], "n");
    assert_eq!(q["rows"][0][0], 512, "data.eval_tokens=512");
    let (status, ct, csv) = server.get("/api/sql.csv?q=SELECT%20token_index%20FROM%20tokens");
    assert_eq!((status, ct.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(csv.lines().count(), 513, "a header and every row");

    // Bad requests: a 4xx with a message, never a 500.
    server.refused(
        "/api/neuron?model=nope&layer=0&neuron=0",
        404,
        "unknown model `nope`",
    );
    server.refused(
        "/api/neuron?model=topk&layer=9&neuron=0",
        404,
        "layers 0..2",
    );
    server.refused(
        "/api/neuron?model=topk&layer=0&neuron=32",
        404,
        "neurons 0..31",
    );
    server.refused(
        "/api/neuron?model=topk&layer=0&neuron=0&step=7",
        404,
        "no checkpoint at step 7",
    );
    server.refused("/api/neuron?model=topk&layer=x&neuron=0", 400, "layer");
    server.refused("/api/neuron?model=topk", 400, "layer");
    server.refused("/api/search?q=", 400, "empty search");
    server.refused("/api/search?q=x&kind=colour", 400, "kind=colour");
    server.refused("/api/search?q=noun.fod&kind=concept", 404, "closest");
    server.refused("/api/compare?model_a=topk&layer=5", 404, "layers 0..2");
    server.refused("/api/steer?model=topk&neurons=1-5", 400, "layer:neuron");
    server.refused(
        "/api/steer?model=topk&neurons=1:5&tokens=5000",
        400,
        "tokens=5000",
    );
    server.refused(
        "/api/steer?model=topk&neurons=1:5&mode=explode",
        400,
        "mode",
    );
    server.refused("/api/sql?q=DROP%20TABLE%20tokens", 400, "refused");
    server.refused(
        "/api/sql?q=INSERT%20INTO%20tokens%20SELECT%20*%20FROM%20tokens",
        400,
        "refused",
    );
    server.refused(
        "/api/sql?q=COPY%20tokens%20TO%20'%2Ftmp%2Fx.csv'",
        400,
        "refused",
    );
    server.refused("/api/sql?q=SELECT%20nope%20FROM%20tokens", 400, "nope");
    server.refused(
        "/api/sql?q=SELECT%20*%20FROM%20missing_table",
        400,
        "tables:",
    );
    // An over-long request is refused before it reaches a handler (hyper's URI limit: 414).
    let long = format!("/api/sql?q={}", "x".repeat(100_001));
    let status = server.get(&long).0;
    assert!(status == 414 || status == 400, "status {status}");
    // The run is unchanged by all of the above.
    let again = server.json("/api/sql?q=SELECT%20COUNT(*)%20AS%20n%20FROM%20tokens");
    assert_eq!(again["rows"][0][0], 512);
}

#[test]
fn on_a_ballista_cluster_the_explorer_gives_the_same_answers() {
    let run = finished_run();
    let cluster = Cluster::start();
    let local = Server::start(run.path());
    let distributed = Server::start_with(
        run.path(),
        &["--engine", "ballista", "--scheduler", &cluster.url],
    );
    for path in [
        "/api/neuron?model=topk&layer=1&neuron=5&step=10",
        "/api/neuron?model=dense&layer=0&neuron=3",
        "/api/search?q=4",
        "/api/compare?model_a=topk&step_a=10&layer=0",
    ] {
        let (a, b) = (local.json(path), distributed.json(path));
        assert!(
            b["notices"].as_array().is_none_or(|n| n.is_empty()),
            "{path}: {}",
            b["notices"]
        );
        // Shares are sums of floats, which two engines may add in another order.
        let exact = |v: &Value| -> Value {
            let mut v = v.clone();
            for section in ["tokens", "concepts"] {
                if let Some(rows) = v.get_mut(section).and_then(Value::as_array_mut) {
                    for r in rows {
                        r.as_object_mut().unwrap().remove("share");
                    }
                }
            }
            v
        };
        assert_eq!(exact(&a), exact(&b), "{path}");
    }
    drop(distributed);
}

#[test]
fn a_partial_run_is_served_with_notices() {
    let tmp = tempfile::tempdir().unwrap();
    for stage in ["prepare", "train", "record"] {
        let out = pipeline(
            tmp.path(),
            &fixture(),
            &[stage, "--set", "sae.enabled=false"],
        );
        assert!(out.status.success(), "{stage}: {}", stderr(&out));
    }
    let server = Server::start(tmp.path());
    let o = server.json("/api/overview");
    assert!(
        o["notices"][0]
            .as_str()
            .unwrap()
            .contains("pipeline analyze"),
        "{o}"
    );
    // The neuron page answers from the recorded tables and says what is missing.
    let page = server.json("/api/neuron?model=topk&layer=0&neuron=0");
    assert!(page["histogram"].as_array().is_some());
    let notes = page["notices"].to_string();
    assert!(notes.contains("pipeline analyze"), "{notes}");
    // A search that needs derived tables says so instead of failing.
    let r = server.json("/api/search?q=3&model=topk");
    assert!(
        r["notices"][0]
            .as_str()
            .unwrap()
            .contains("pipeline analyze"),
        "{r}"
    );
    let count = "SELECT COUNT(*) AS n FROM token_entropy";
    server.refused(&format!("/api/sql?q={}", enc(count)), 400, "token_entropy");
    // What the server sees while `analyze` runs: the manifest marks it running and its tables
    // are not there yet. The notices say it is running, not that it should be run.
    let manifest_path = tmp.path().join("e2e/manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    manifest["stages"]["analyze"] = serde_json::json!({
        "status": "running", "fingerprint": "", "inputs": {}, "outputs": [],
        "seconds": 0.0, "finished_at": 0,
    });
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let o = server.json("/api/overview");
    let notes = o["notices"].to_string();
    assert!(notes.contains("`analyze` is running"), "{notes}");
    assert!(!notes.contains("run `pipeline analyze`"), "{notes}");
    let r = server.json("/api/search?q=3&model=topk");
    let notes = r["notices"].to_string();
    assert!(notes.contains("`analyze` is running"), "{notes}");
    // `analyze` run while the server is up: its tables are served without a restart, and
    // the notices go.
    let out = pipeline(
        tmp.path(),
        &fixture(),
        &["analyze", "--set", "sae.enabled=false"],
    );
    assert!(out.status.success(), "analyze: {}", stderr(&out));
    let o = server.json("/api/overview");
    assert_eq!(o["notices"], serde_json::json!([]), "{o}");
    let r = server.json("/api/search?q=3&model=topk");
    assert_eq!(r["notices"], serde_json::json!([]), "{r}");
    assert!(!r["rows"].as_array().unwrap().is_empty(), "{r}");
    let served = server.json(&format!("/api/sql?q={}", enc(count)));
    let expected = sql_rows(tmp.path(), count, &["sae.enabled=false"]);
    assert_eq!(served["rows"][0][0].to_string(), expected[0], "{served}");
}

#[test]
fn a_researcher_can_search_open_a_neuron_move_the_slider_steer_and_query_in_a_browser() {
    let Some(chrome) = chromium_or_skip() else {
        return;
    };
    let run = finished_run();
    let server = Server::start(run.path());
    let overview = server.json("/api/overview");
    let first_step = overview["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "topk")
        .unwrap()["steps"][0]
        .as_u64()
        .unwrap();
    let shots = std::env::temp_dir().join("pipeline-serve-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let mut b = Browser::start(&chrome, &run.path().join("profile"));
    let base = format!("http://{}/", server.addr);
    let ready = "document.body && document.body.dataset.state === 'ready'";

    // Search: type a concept the model has, submit, see a table of neurons.
    b.goto(&format!("{base}#/search"));
    b.wait_for(ready, 30);
    let concept = b.eval(
        "fetch('/api/sql?q=' + encodeURIComponent(\"SELECT top_concept FROM semantic_entropy WHERE model='topk' AND step=20 GROUP BY top_concept ORDER BY COUNT(*) DESC, top_concept LIMIT 1\")).then(r => r.json()).then(j => j.rows[0][0])",
    );
    let concept = concept.as_str().unwrap().to_owned();
    b.eval(&format!(
        "document.body.dataset.state = 'pending'; document.getElementById('search-q').value = {}; document.getElementById('search-form').requestSubmit(); true",
        serde_json::to_string(&concept).unwrap()
    ));
    b.wait_for(
        &format!("{ready} && document.querySelectorAll('#results tbody tr').length > 0"),
        30,
    );
    b.screenshot(&shots.join("1-search.png"));

    // Open the first result: the neuron page with its contexts.
    b.eval("document.body.dataset.state = 'pending'; document.querySelector('#results tbody a').click(); true");
    b.wait_for(
        &format!("{ready} && document.body.dataset.view === 'neuron'"),
        30,
    );
    let title = b.eval("document.getElementById('neuron-title').textContent");
    assert!(title.as_str().unwrap().contains("neuron"), "{title}");
    let before = b.eval("document.getElementById('contexts').textContent");
    b.screenshot(&shots.join("2-neuron.png"));

    // Move the slider to the first checkpoint: the page shows that step and other contexts.
    b.eval("document.body.dataset.state = 'pending'; const s = document.getElementById('step-slider'); s.value = 0; s.dispatchEvent(new Event('change')); true");
    b.wait_for(
        &format!(
            "{ready} && document.getElementById('step-label').textContent === 'step {first_step}'"
        ),
        30,
    );
    let after = b.eval("document.getElementById('contexts').textContent");
    assert!(
        after
            .as_str()
            .unwrap()
            .contains(&format!("at step {first_step}")),
        "{after}"
    );
    assert_ne!(before, after, "the contexts change with the checkpoint");
    b.screenshot(&shots.join("3-neuron-step0.png"));

    // Steer: both texts appear.
    b.goto(&format!(
        "{base}#/steer?model=topk&neurons=1:5&mode=add&strength=6&tokens=12&seed=3"
    ));
    b.wait_for(&format!("{ready} && document.body.dataset.view === 'steer' && document.querySelector('#plain .text') && document.querySelector('#steered .text')"), 60);
    let plain = b.eval("document.querySelector('#plain .text').textContent");
    let steered = b.eval("document.querySelector('#steered .text').textContent");
    assert!(plain.as_str().unwrap().len() > 4 && steered.as_str().unwrap().len() > 4);
    b.screenshot(&shots.join("4-steer.png"));

    // SQL: type a query, run it, see its rows.
    b.goto(&format!("{base}#/sql"));
    b.wait_for(
        &format!("{ready} && document.body.dataset.view === 'sql'"),
        30,
    );
    b.eval("document.body.dataset.state = 'pending'; document.getElementById('sql-q').value = 'SELECT COUNT(*) AS n FROM tokens'; document.getElementById('sql-run').click(); true");
    b.wait_for(
        &format!("{ready} && document.querySelectorAll('#sql-out tbody tr').length === 1"),
        30,
    );
    let cell = b.eval("document.querySelector('#sql-out tbody td').textContent");
    assert_eq!(cell, "512");
    b.screenshot(&shots.join("5-sql.png"));

    // Text from the run is shown as text: markup in a value neither runs nor renders.
    b.eval("document.body.dataset.state = 'pending'; document.getElementById('sql-q').value = \"SELECT '<img src=x onerror=alert(1)><script>alert(2)</script>' AS x\"; document.getElementById('sql-run').click(); true");
    b.wait_for(
        &format!("{ready} && document.querySelector('#sql-out tbody td')"),
        30,
    );
    let cell = b.eval("document.querySelector('#sql-out tbody td').textContent");
    assert_eq!(
        cell,
        "<img src=x onerror=alert(1)><script>alert(2)</script>"
    );
    let injected = b.eval("document.querySelectorAll('#view img, #view script').length");
    assert_eq!(injected, 0);

    assert!(b.errors.is_empty(), "console errors: {:?}", b.errors);
    eprintln!("screenshots: {}", shots.display());
}
