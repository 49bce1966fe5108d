//! What the explorer answers: search, the neuron page, comparisons and SQL, as JSON, from the
//! run's DataFusion session (the one `pipeline sql` opens, read-only). Each answer is a set of
//! queries from `queries/sql/serve/`; a section whose table is missing (a partial run) becomes a
//! notice, never an error of the whole page.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use queries::sql::serve::{self as q, Literal, fill};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ApiError;
use crate::sql::{Access, json_rows, plan};

type Row = Map<String, Value>;

/// Rows shown by `/api/sql`; the CSV download has them all.
pub const SQL_ROWS_SHOWN: usize = 1000;

/// One model's checkpoints and layers, from the recorded `neurons` table.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub steps: Vec<usize>,
    /// Neurons per layer (the same at every step).
    pub layers: Vec<usize>,
}

impl ModelInfo {
    pub fn last_step(&self) -> usize {
        self.steps.last().copied().unwrap_or(0)
    }
}

/// The session and what the run holds.
pub struct Explorer {
    pub session: SessionContext,
    pub models: Vec<ModelInfo>,
    pub concepts: Vec<String>,
    pub run_dir: std::path::PathBuf,
    /// Longest a query may run.
    pub timeout: Duration,
    /// Notices about the run as a whole (missing tables, stages running).
    pub notices: Vec<String>,
    /// Stages the manifest marks as running: a table they make may be missing for a while.
    pub running: Vec<String>,
}

/// `/api/search` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct SearchParams {
    /// A concept (noun.food), a word (bread) or a neuron number (417).
    pub q: String,
    /// concept, word or neuron; default: a number is a neuron, a known concept a concept, the
    /// rest a word.
    pub kind: Option<String>,
    pub model: Option<String>,
    pub layer: Option<usize>,
    /// Default: each model's last checkpoint.
    pub step: Option<usize>,
    pub min_entropy: Option<f64>,
    pub max_entropy: Option<f64>,
    pub min_frequency: Option<f64>,
    pub max_frequency: Option<f64>,
    pub limit: Option<usize>,
}

/// `/api/neuron` parameters.
#[derive(Debug, Deserialize)]
pub struct NeuronParams {
    pub model: String,
    pub layer: usize,
    pub neuron: usize,
    /// Default: the model's last checkpoint.
    pub step: Option<usize>,
}

/// `/api/compare` parameters: one layer of A = (model_a, step_a) beside B = (model_b, step_b).
#[derive(Debug, Deserialize)]
pub struct CompareParams {
    pub model_a: String,
    pub step_a: Option<usize>,
    /// Default: model_a.
    pub model_b: Option<String>,
    /// Default: model_b's last checkpoint.
    pub step_b: Option<usize>,
    pub layer: usize,
}

/// `/api/sql` parameters.
#[derive(Debug, Deserialize)]
pub struct SqlParams {
    pub q: String,
}

impl Explorer {
    /// Opens the explorer over `session` (tables of `run_dir` registered).
    pub async fn open(
        session: SessionContext,
        run_dir: std::path::PathBuf,
        timeout: Duration,
        running: Vec<String>,
    ) -> anyhow::Result<Self> {
        let mut notices: Vec<String> = running
            .iter()
            .map(|stage| {
                format!(
                    "`{stage}` is running on this run (or was interrupted): its tables may change; pages show the new ones once it finishes"
                )
            })
            .collect();
        let mut models: Vec<ModelInfo> = Vec::new();
        match rows_of(&session, q::OVERVIEW).await {
            Ok(rows) => {
                for r in rows {
                    let name = text(&r, "model");
                    let (step, layer, n) =
                        (int(&r, "step"), int(&r, "layer"), int(&r, "n_neurons"));
                    if models.last().is_none_or(|m| m.name != name) {
                        models.push(ModelInfo {
                            name,
                            steps: Vec::new(),
                            layers: Vec::new(),
                        });
                    }
                    let m = models.last_mut().expect("pushed above");
                    if m.steps.last() != Some(&step) {
                        m.steps.push(step);
                    }
                    if m.layers.len() <= layer {
                        m.layers.resize(layer + 1, 0);
                    }
                    m.layers[layer] = m.layers[layer].max(n);
                }
            }
            Err(_) if is_running(&running, "record") => {}
            Err(_) => notices.push(
                "no recorded activations yet: run `pipeline run all` (or `pipeline record`)"
                    .to_owned(),
            ),
        }
        if !models.is_empty()
            && !is_running(&running, "analyze")
            && !session.table_exist("neuron_stats").unwrap_or(false)
        {
            notices.push(
                "the derived tables are missing: run `pipeline analyze` for entropies, lineage and search by concept"
                    .to_owned(),
            );
        }
        let concepts = rows_of(&session, q::CONCEPTS)
            .await
            .map(|rows| rows.iter().map(|r| text(r, "concept")).collect())
            .unwrap_or_default();
        Ok(Self {
            session,
            models,
            concepts,
            run_dir,
            timeout,
            notices,
            running,
        })
    }

    /// `/api/overview`: models, checkpoints, layers, concepts and the run's notices.
    pub fn overview(&self) -> Value {
        json!({
            "run": self.run_dir.display().to_string(),
            "models": self.models,
            "concepts": self.concepts,
            "notices": self.notices,
        })
    }

    pub fn model(&self, name: &str) -> Result<&ModelInfo, ApiError> {
        self.models.iter().find(|m| m.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
            ApiError::not_found(format!(
                "unknown model `{name}`; models: {}",
                known.join(", ")
            ))
        })
    }

    /// The step asked for, or the model's last; an unknown step lists the known ones.
    pub fn step(&self, m: &ModelInfo, step: Option<usize>) -> Result<usize, ApiError> {
        match step {
            None => Ok(m.last_step()),
            Some(s) if m.steps.contains(&s) => Ok(s),
            Some(s) => Err(ApiError::not_found(format!(
                "model `{}` has no checkpoint at step {s}; steps: {}",
                m.name,
                join(&m.steps)
            ))),
        }
    }

    pub fn layer(&self, m: &ModelInfo, layer: usize) -> Result<usize, ApiError> {
        if layer < m.layers.len() {
            Ok(layer)
        } else {
            Err(ApiError::not_found(format!(
                "model `{}` has layers 0..{}; there is no layer {layer}",
                m.name,
                m.layers.len().saturating_sub(1)
            )))
        }
    }

    pub fn neuron(&self, m: &ModelInfo, layer: usize, neuron: usize) -> Result<usize, ApiError> {
        let n = m.layers[layer];
        if neuron < n {
            Ok(neuron)
        } else {
            Err(ApiError::not_found(format!(
                "layer {layer} of `{}` has neurons 0..{}; there is no neuron {neuron}",
                m.name,
                n.saturating_sub(1)
            )))
        }
    }

    /// `/api/search`: neurons by concept, word or number, over one model or all, at one step
    /// or each model's last, best first.
    pub async fn search(&self, p: &SearchParams) -> Result<Value, ApiError> {
        let wanted = p.q.trim();
        if wanted.is_empty() {
            return Err(ApiError::bad_request(
                "empty search: give q, e.g. q=noun.food, q=bread or q=417",
            ));
        }
        let kind = match p.kind.as_deref() {
            Some(k @ ("concept" | "word" | "neuron")) => k,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "kind={other}: use concept, word or neuron"
                )));
            }
            None if wanted.parse::<usize>().is_ok() => "neuron",
            None if self.concepts.iter().any(|c| c == wanted) => "concept",
            None => "word",
        };
        let limit = p.limit.unwrap_or(50).clamp(1, 500);
        let models: Vec<&ModelInfo> = match &p.model {
            Some(name) => vec![self.model(name)?],
            None => self.models.iter().collect(),
        };
        let (sql, subject) = match kind {
            "concept" => {
                if !self.concepts.iter().any(|c| c == wanted) {
                    let close = crate::steering::closest(wanted, self.concepts.clone(), 5);
                    return Err(ApiError::not_found(format!(
                        "no concept `{wanted}`; closest: {}",
                        close.join(", ")
                    )));
                }
                (q::SEARCH_CONCEPT, ("concept", Literal::from(wanted)))
            }
            "word" => (
                q::SEARCH_WORD,
                ("word", Literal::from(wanted.to_lowercase().as_str())),
            ),
            _ => {
                let n: usize = wanted.parse().map_err(|_| {
                    ApiError::bad_request(format!("kind=neuron needs a number, not `{wanted}`"))
                })?;
                (q::SEARCH_NUMBER, ("neuron", Literal::from(n)))
            }
        };
        let mut rows = Vec::new();
        let mut notices = Vec::new();
        for m in models {
            if let Some(layer) = p.layer {
                self.layer(m, layer)?;
            }
            let step = match p.step {
                Some(s) if !m.steps.contains(&s) && p.model.is_none() => continue,
                s => self.step(m, s)?,
            };
            let params = [
                ("model", Literal::from(m.name.as_str())),
                ("step", step.into()),
                ("layer", p.layer.into()),
                subject.clone(),
                ("min_entropy", p.min_entropy.unwrap_or(0.0).into()),
                ("max_entropy", p.max_entropy.unwrap_or(1.0).into()),
                ("min_frequency", p.min_frequency.unwrap_or(0.0).into()),
                ("max_frequency", p.max_frequency.unwrap_or(1.0).into()),
                ("limit", limit.into()),
            ];
            match self.query(&fill(sql, &params)).await {
                Ok(r) => rows.extend(r),
                Err(e) => notices.push(e.message),
            }
        }
        rows.sort_by(|a, b| number(b, "score").total_cmp(&number(a, "score")));
        rows.truncate(limit);
        notices.dedup();
        Ok(json!({ "kind": kind, "q": wanted, "rows": rows, "notices": notices }))
    }

    /// `/api/neuron`: everything about one neuron at one checkpoint, and its history.
    pub async fn neuron_page(&self, p: &NeuronParams) -> Result<Value, ApiError> {
        let m = self.model(&p.model)?;
        let step = self.step(m, p.step)?;
        let layer = self.layer(m, p.layer)?;
        let neuron = self.neuron(m, layer, p.neuron)?;
        let at = |extra: &[(&'static str, Literal)]| -> Vec<(&'static str, Literal)> {
            let mut v = vec![
                ("model", Literal::from(m.name.as_str())),
                ("step", step.into()),
                ("layer", layer.into()),
                ("neuron", neuron.into()),
            ];
            v.extend(extra.iter().cloned());
            v
        };
        let top = [
            ("top_n", Literal::Int(10)),
            ("before", Literal::Int(8)),
            ("after", Literal::Int(4)),
        ];
        let top_15 = [("top_n", Literal::Int(15))];
        let sql = [
            fill(q::NEURON_OVER_STEPS, &at(&[])),
            fill(q::NEURON_CONTEXTS, &at(&top)),
            fill(q::NEURON_TOKENS, &at(&top_15)),
            fill(q::NEURON_CONCEPTS, &at(&top_15)),
            fill(q::NEURON_HISTOGRAM, &at(&[("bins", Literal::Int(20))])),
            fill(q::NEURON_WEIGHTS, &at(&[])),
            fill(q::NEURON_LAYERS, &at(&[])),
            fill(q::NEURON_MATCHES, &at(&[])),
        ];
        // The sections run at once: each reads little, and together they fill both cores.
        let (over_steps, contexts, tokens, concepts, histogram, weights, layers, matches) = futures::join!(
            self.query(&sql[0]),
            self.query(&sql[1]),
            self.query(&sql[2]),
            self.query(&sql[3]),
            self.query(&sql[4]),
            self.query(&sql[5]),
            self.query(&sql[6]),
            self.query(&sql[7]),
        );
        let mut notices = Vec::new();
        let mut take = |s: Result<Vec<Row>, ApiError>| match s {
            Ok(rows) => rows,
            Err(e) => {
                if !notices.contains(&e.message) {
                    notices.push(e.message);
                }
                Vec::new()
            }
        };
        let contexts = group_contexts(take(contexts));
        Ok(json!({
            "model": m.name, "layer": layer, "neuron": neuron, "step": step,
            "steps": m.steps, "n_layers": m.layers.len(), "n_neurons": m.layers[layer],
            "over_steps": take(over_steps),
            "contexts": contexts,
            "tokens": take(tokens),
            "concepts": take(concepts),
            "histogram": take(histogram),
            "weights": take(weights).into_iter().next(),
            "layers": take(layers),
            "matches": take(matches),
            "notices": notices,
        }))
    }

    /// `/api/compare`: one layer of two checkpoints (or models) side by side.
    pub async fn compare(&self, p: &CompareParams) -> Result<Value, ApiError> {
        let a = self.model(&p.model_a)?;
        let b = self.model(p.model_b.as_deref().unwrap_or(&p.model_a))?;
        let (step_a, step_b) = (self.step(a, p.step_a)?, self.step(b, p.step_b)?);
        let layer = self.layer(a, p.layer)?;
        self.layer(b, layer)?;
        let params = [
            ("model_a", Literal::from(a.name.as_str())),
            ("step_a", step_a.into()),
            ("model_b", Literal::from(b.name.as_str())),
            ("step_b", step_b.into()),
            ("layer", layer.into()),
        ];
        let same_model = a.name == b.name;
        let concepts_sql = fill(q::COMPARE_CONCEPTS, &params);
        let (neurons, concepts) = futures::join!(
            async {
                if same_model {
                    self.query(&fill(q::COMPARE_NEURONS, &params)).await
                } else {
                    Ok(Vec::new())
                }
            },
            self.query(&concepts_sql),
        );
        let mut notices = Vec::new();
        if !same_model {
            notices.push(format!(
                "`{}` and `{}` are different models: a neuron index means nothing across them, so only the concept counts are compared",
                a.name, b.name
            ));
        }
        let neurons = neurons.unwrap_or_else(|e| {
            notices.push(e.message);
            Vec::new()
        });
        let concepts = concepts.unwrap_or_else(|e| {
            notices.push(e.message);
            Vec::new()
        });
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for r in &neurons {
            *counts.entry(text(r, "change")).or_default() += 1;
        }
        Ok(json!({
            "a": {"model": a.name, "step": step_a}, "b": {"model": b.name, "step": step_b},
            "layer": layer, "counts": counts, "neurons": neurons, "concepts": concepts,
            "notices": notices,
        }))
    }

    /// `/api/sql`: a read-only query; the first [`SQL_ROWS_SHOWN`] rows and the total.
    pub async fn sql(&self, p: &SqlParams) -> Result<Value, ApiError> {
        let started = Instant::now();
        let batches = self.sql_batches(&p.q).await?;
        let columns: Vec<String> = batches
            .first()
            .map(|b| {
                b.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        let mut shown = Vec::new();
        let mut left = SQL_ROWS_SHOWN;
        for b in &batches {
            if left == 0 {
                break;
            }
            let part = b.slice(0, left.min(b.num_rows()));
            left -= part.num_rows();
            shown.push(part);
        }
        let rows: Vec<Vec<Value>> = json_rows(&shown)
            .map_err(ApiError::internal)?
            .into_iter()
            .map(|r| {
                columns
                    .iter()
                    .map(|c| r.get(c).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        Ok(json!({
            "columns": columns, "rows": rows, "total_rows": total,
            "truncated": total > rows.len(),
            "elapsed_ms": started.elapsed().as_secs_f64() * 1e3,
        }))
    }

    /// A read-only query's full result (DDL, DML and COPY refused as by `pipeline sql`).
    pub async fn sql_batches(
        &self,
        query: &str,
    ) -> Result<Vec<arrow::array::RecordBatch>, ApiError> {
        if query.trim().is_empty() {
            return Err(ApiError::bad_request("empty query: give q=SELECT ..."));
        }
        let access = Access {
            run_dir: &self.run_dir,
            allow_copy: false,
        };
        let run = async {
            let df = plan(&self.session, query, &access)
                .await
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            df.collect()
                .await
                .map_err(|e| ApiError::bad_request(e.to_string()))
        };
        tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| self.too_slow())?
    }

    /// Rows of one of the explorer's own queries, within the time limit; a missing table is an
    /// error that names the stage that makes it (a page shows it as a notice).
    pub async fn query(&self, sql: &str) -> Result<Vec<Row>, ApiError> {
        tokio::time::timeout(self.timeout, rows_of(&self.session, sql))
            .await
            .map_err(|_| self.too_slow())?
            .map_err(|e| ApiError::unavailable(missing_table_notice(&e.to_string(), &self.running)))
    }

    fn too_slow(&self) -> ApiError {
        ApiError::unavailable(format!(
            "the query ran longer than {} s and was stopped; narrow it (WHERE, LIMIT) or start `pipeline serve --timeout-s` with more",
            self.timeout.as_secs()
        ))
    }
}

async fn rows_of(session: &SessionContext, sql: &str) -> anyhow::Result<Vec<Row>> {
    let batches = session.sql(sql).await?.collect().await?;
    json_rows(&batches)
}

fn is_running(running: &[String], stage: &str) -> bool {
    running.iter().any(|s| s == stage)
}

/// "table 'x' not found" becomes a line that says which stage makes it, or that the stage is
/// running (`running`: the stages the manifest marks so).
fn missing_table_notice(error: &str, running: &[String]) -> String {
    let Some(table) = error
        .split("table '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
    else {
        return error.to_owned();
    };
    let stage = match table.as_str() {
        "activations" | "activations_stored" | "neurons" => "record",
        "tokens" => "prepare",
        "steering" => "steer",
        _ => "analyze",
    };
    if is_running(running, stage) {
        return format!(
            "table `{table}` is being written: `{stage}` is running; this section appears when it finishes"
        );
    }
    format!("table `{table}` is missing: run `pipeline {stage}` to see this section")
}

/// Context rows (one per token) grouped into one object per top activation.
fn group_contexts(rows: Vec<Row>) -> Vec<Value> {
    let mut out: Vec<(i64, f64, Vec<Value>)> = Vec::new();
    for r in rows {
        let rank = number(&r, "rank") as i64;
        if out.last().is_none_or(|(k, _, _)| *k != rank) {
            out.push((rank, number(&r, "top_value"), Vec::new()));
        }
        out.last_mut().expect("pushed above").2.push(json!({
            "text": text(&r, "token_text"),
            "token_index": number(&r, "token_index") as i64,
            "value": number(&r, "value"),
            "offset": number(&r, "offset") as i64,
        }));
    }
    out.into_iter()
        .map(|(rank, value, tokens)| json!({"rank": rank, "value": value, "tokens": tokens}))
        .collect()
}

fn text(r: &Row, key: &str) -> String {
    match r.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn number(r: &Row, key: &str) -> f64 {
    r.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn int(r: &Row, key: &str) -> usize {
    r.get(key).and_then(Value::as_u64).unwrap_or(0) as usize
}

fn join(xs: &[usize]) -> String {
    xs.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_table_names_the_stage_that_makes_it() {
        let lineage = "Error during planning: table 'datafusion.public.lineage' not found";
        assert_eq!(
            missing_table_notice(lineage, &[]),
            "table `lineage` is missing: run `pipeline analyze` to see this section"
        );
        assert_eq!(
            missing_table_notice(lineage, &["record".to_owned()]),
            "table `lineage` is missing: run `pipeline analyze` to see this section"
        );
        assert_eq!(
            missing_table_notice(lineage, &["analyze".to_owned()]),
            "table `lineage` is being written: `analyze` is running; this section appears when it finishes"
        );
        assert_eq!(missing_table_notice("Arrow error", &[]), "Arrow error");
    }

    #[test]
    fn context_rows_group_by_rank_in_order() {
        let row = |rank: i64, offset: i64, text: &str| {
            json!({"rank": rank, "top_value": 2.0, "offset": offset, "token_text": text, "value": 1.0})
                .as_object()
                .unwrap()
                .clone()
        };
        let grouped = group_contexts(vec![row(1, -1, "a"), row(1, 0, "b"), row(2, 0, "c")]);
        assert_eq!(grouped.len(), 2);
        assert_eq!(grouped[0]["tokens"].as_array().unwrap().len(), 2);
        assert_eq!(grouped[1]["tokens"][0]["text"], "c");
    }
}
