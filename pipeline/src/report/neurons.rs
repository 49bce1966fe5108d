//! The table of the most concept-specific neurons and one dashboard page per listed neuron.

use std::collections::BTreeMap;

use anyhow::Result;
use queries::results::{
    HistogramBin, NeuronConcept, NeuronContext, NeuronEntropy, SteeringExample, TopNeuron,
};
use queries::sql::report as q;
use reports::html::{Context, NeuronPage, Table};

use super::Queries;

/// (model, layer, neuron): how rows of the page queries find their neuron.
type NeuronKey = (String, u16, u16);

/// Rows of one query grouped by neuron, in row order.
fn by_neuron<R>(rows: Vec<R>, key: impl Fn(&R) -> NeuronKey) -> BTreeMap<NeuronKey, Vec<R>> {
    let mut out: BTreeMap<NeuronKey, Vec<R>> = BTreeMap::new();
    for r in rows {
        out.entry(key(&r)).or_default().push(r);
    }
    out
}

/// What the neuron pages show besides the neuron's own row.
struct PageData {
    contexts: BTreeMap<NeuronKey, Vec<NeuronContext>>,
    concepts: BTreeMap<NeuronKey, Vec<NeuronConcept>>,
    histograms: BTreeMap<NeuronKey, Vec<HistogramBin>>,
    entropy: BTreeMap<NeuronKey, Vec<NeuronEntropy>>,
    steering: Vec<SteeringExample>,
}

impl PageData {
    async fn fetch(qs: &mut Queries<'_>) -> Result<Self> {
        let contexts = qs
            .rows(q::NEURON_CONTEXTS, "Neuron pages: top contexts")
            .await?
            .unwrap_or_default();
        let concepts = qs
            .rows(q::NEURON_CONCEPTS, "Neuron pages: concepts")
            .await?
            .unwrap_or_default();
        let histograms = qs
            .rows(q::NEURON_HISTOGRAMS, "Neuron pages: activation histograms")
            .await?
            .unwrap_or_default();
        let entropy = qs
            .rows(
                q::NEURON_ENTROPY_OVER_STEPS,
                "Neuron pages: entropy over training",
            )
            .await?
            .unwrap_or_default();
        let steering = qs
            .rows(q::STEERING_EXAMPLES, "Neuron pages: steering examples")
            .await?
            .unwrap_or_default();
        Ok(Self {
            contexts: by_neuron(contexts, |r: &NeuronContext| {
                (r.model.clone(), r.layer, r.neuron)
            }),
            concepts: by_neuron(concepts, |r: &NeuronConcept| {
                (r.model.clone(), r.layer, r.neuron)
            }),
            histograms: by_neuron(histograms, |r: &HistogramBin| {
                (r.model.clone(), r.layer, r.neuron)
            }),
            entropy: by_neuron(entropy, |r: &NeuronEntropy| {
                (r.model.clone(), r.layer, r.neuron)
            }),
            steering,
        })
    }
}

/// The neuron table of the index page and the neurons' dashboards.
pub async fn section(qs: &mut Queries<'_>, per_layer: usize) -> Result<(Table, Vec<NeuronPage>)> {
    let mut table = Table {
        headers: [
            "neuron",
            "top concept",
            "concept share",
            "semantic entropy",
            "token entropy",
            "frequency",
            "formed at step",
            "promotes",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    };
    let sql = q::TOP_NEURONS.replace("{{limit}}", &per_layer.to_string());
    let Some(top) = qs
        .rows::<TopNeuron>(&sql, "Concept-specific neurons")
        .await?
    else {
        return Ok((table, vec![]));
    };
    let data = PageData::fetch(qs).await?;
    let mut pages = Vec::new();
    for n in &top {
        let slug = format!("{}-L{}-N{}", n.model, n.layer, n.neuron);
        table.rows.push(vec![
            format!("{} L{} N{}", n.model, n.layer, n.neuron),
            n.top_concept.clone(),
            format!("{:.2}", n.top_share),
            format!("{:.3}", n.semantic_entropy),
            fixed(n.token_entropy, 3),
            fixed(n.frequency, 4),
            formed_at(n),
            n.top_promoted.clone().unwrap_or_default(),
        ]);
        table.links.push(Some(format!("neurons/{slug}.html")));
        pages.push(page(n, slug, &data));
    }
    Ok((table, pages))
}

/// A value with `digits` decimals, or a dash when the statistic is missing.
fn fixed(value: Option<f64>, digits: usize) -> String {
    value.map_or("—".to_owned(), |v| format!("{v:.digits$}"))
}

fn formed_at(n: &TopNeuron) -> String {
    n.formation_step
        .map_or("not yet".to_owned(), |s| s.to_string())
}

fn page(n: &TopNeuron, slug: String, data: &PageData) -> NeuronPage {
    let key = (n.model.clone(), n.layer, n.neuron);
    let histogram = data
        .histograms
        .get(&key)
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let lo = h.bin? as f64 / 10.0 * h.top;
            Some((format!("{lo:.2}–{:.2}", lo + h.top / 10.0), h.n))
        })
        .collect();
    let name = format!("L{}:N{}", n.layer, n.neuron);
    NeuronPage {
        slug,
        title: format!(
            "{} · layer {} · neuron {} · {}",
            n.model, n.layer, n.neuron, n.top_concept
        ),
        facts: vec![
            ("checkpoint step".into(), n.step.to_string()),
            (
                "top concept (share)".into(),
                format!("{} ({:.2})", n.top_concept, n.top_share),
            ),
            (
                "semantic entropy (normalised)".into(),
                format!("{:.3}", n.semantic_entropy),
            ),
            (
                "token entropy (normalised)".into(),
                fixed(n.token_entropy, 3),
            ),
            ("activation frequency".into(), fixed(n.frequency, 4)),
            ("max activation".into(), fixed(n.max_value, 3)),
            ("observations".into(), n.n_obs.to_string()),
            ("formed at step".into(), formed_at(n)),
        ],
        contexts: data
            .contexts
            .get(&key)
            .into_iter()
            .flatten()
            .map(|c| Context {
                left: c.left_context.clone().unwrap_or_default(),
                token: c.token_text.clone().unwrap_or_default(),
                right: c.right_context.clone().unwrap_or_default(),
                value: c.value,
            })
            .collect(),
        concepts: data
            .concepts
            .get(&key)
            .into_iter()
            .flatten()
            .take(10)
            .map(|c| (c.concept.clone(), c.share))
            .collect(),
        entropy_over_steps: data
            .entropy
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|e| Some((e.step as f64, e.entropy_norm?)))
            .collect(),
        histogram,
        promoted: n.top_promoted.clone().unwrap_or_default(),
        suppressed: n.top_suppressed.clone().unwrap_or_default(),
        steering: data
            .steering
            .iter()
            .filter(|s| s.model == n.model && s.neurons.split(',').any(|x| x == name))
            .take(3)
            .map(|s| (s.concept.clone(), s.text.clone()))
            .collect(),
    }
}
