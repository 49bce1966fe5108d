//! The HTML report: `index.html` with the run summary, figures and a sortable table of the
//! most concept-specific neurons, and one dashboard page per listed neuron. Opens from disk
//! with no network: figures are sibling files with relative paths, CSS and JS are inline.

use std::fmt::Write as _;
use std::path::Path;

use crate::chart::ticks::format_count;

use crate::{Error, Result};

/// A figure on the index page.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureRef {
    pub title: String,
    /// Paths relative to `index.html`.
    pub png: String,
    pub svg: String,
    pub csv: String,
    /// What to look for.
    pub caption: String,
}

/// A table of plain cells; `link` of a row makes its first cell a link.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub links: Vec<Option<String>>,
}

/// One top-activating context.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub left: String,
    pub token: String,
    pub right: String,
    pub value: f64,
}

/// A neuron dashboard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NeuronPage {
    /// File name stem (`topk-L1-N42`).
    pub slug: String,
    pub title: String,
    pub facts: Vec<(String, String)>,
    pub contexts: Vec<Context>,
    /// (concept, share of the neuron's weight).
    pub concepts: Vec<(String, f64)>,
    /// (step, normalised semantic entropy).
    pub entropy_over_steps: Vec<(f64, f64)>,
    /// (bin label, count) of activation values.
    pub histogram: Vec<(String, u64)>,
    pub promoted: String,
    pub suppressed: String,
    /// (concept, steered text) where the steering evaluation used this neuron.
    pub steering: Vec<(String, String)>,
}

/// Everything on the report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub title: String,
    pub summary: Vec<(String, String)>,
    pub models: Table,
    /// Feature stability, TopK-LM neurons against SAE latents (empty: no SAE baseline).
    pub stability: Table,
    pub figures: Vec<FigureRef>,
    /// Parts that could not be drawn, said in place instead of failing the report.
    pub notices: Vec<String>,
    pub neurons: Table,
    pub pages: Vec<NeuronPage>,
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f0f0f0;cursor:pointer}figure{margin:2em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{color:#444}.notice{background:#fff4e0;border-left:4px solid #e69f00;padding:.5em 1em}
.ctx{font-family:DejaVu Sans Mono,monospace;white-space:pre-wrap}.tok{padding:0 2px;border-radius:3px}
.bar{background:#0072b2;height:12px;display:inline-block}";

/// Marks on `<body data-images="loaded/total">` how many images rendered, so a headless
/// browser (and a reader's devtools) can check the page without a driver.
const IMAGE_CHECK_JS: &str = "window.addEventListener('load',()=>{const i=[...document.images];
document.body.dataset.images=i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length});";

const SORT_JS: &str = "document.querySelectorAll('table.sortable th').forEach((th,i)=>th.addEventListener('click',()=>{
const t=th.closest('table'),b=t.tBodies[0],r=[...b.rows],d=th.dataset.d==='1'?-1:1;th.dataset.d=d===1?'1':'0';
r.sort((x,y)=>{const a=x.cells[i].innerText,c=y.cells[i].innerText,n=parseFloat(a)-parseFloat(c);return d*(isNaN(n)?a.localeCompare(c):n)});
r.forEach(x=>b.appendChild(x))}));";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}\n<script>{SORT_JS}{IMAGE_CHECK_JS}</script>\n</body></html>\n",
        esc(title)
    )
}

fn table_html(t: &Table, sortable: bool) -> String {
    let mut s = format!(
        "<table{}><thead><tr>",
        if sortable { " class=\"sortable\"" } else { "" }
    );
    for h in &t.headers {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for (i, row) in t.rows.iter().enumerate() {
        s.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            match (j, t.links.get(i).and_then(|l| l.as_ref())) {
                (0, Some(link)) => {
                    let _ = write!(s, "<td><a href=\"{}\">{}</a></td>", esc(link), esc(cell));
                }
                _ => {
                    let _ = write!(s, "<td>{}</td>", esc(cell));
                }
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A small inline SVG line chart (no external files).
fn sparkline(points: &[(f64, f64)], x_label: &str, y_label: &str) -> String {
    if points.is_empty() {
        return "<p class=\"notice\">no data</p>".into();
    }
    let (w, h, m) = (420.0, 160.0, 30.0);
    let (x0, x1) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (y0, y1) = (0.0f64, points.iter().map(|p| p.1).fold(1.0f64, f64::max));
    let sx = |x: f64| m + (x - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * m);
    let sy = |y: f64| h - m - (y - y0) / (y1 - y0).max(1e-9) * (h - 2.0 * m);
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    format!(
        "<svg width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{y} over {x}\"><rect width=\"{w}\" height=\"{h}\" fill=\"white\" stroke=\"#ccc\"/>\
         <polyline fill=\"none\" stroke=\"#0072b2\" stroke-width=\"2\" points=\"{}\"/>\
         <text x=\"{m}\" y=\"{}\" font-size=\"11\">{x} {x0:.0}–{x1:.0}</text><text x=\"4\" y=\"14\" font-size=\"11\">{y} (0–{y1:.2})</text></svg>",
        path.join(" "),
        h - 8.0,
        x = esc(x_label),
        y = esc(y_label)
    )
}

/// Horizontal bars: (label, length, the value as printed).
fn bars(items: &[(&str, f64, String)], max_width: f64) -> String {
    let top = items.iter().map(|i| i.1).fold(0.0f64, f64::max).max(1e-12);
    let mut s = String::from("<table>");
    for (label, v, shown) in items {
        let _ = write!(
            s,
            "<tr><td>{}</td><td><span class=\"bar\" style=\"width:{:.0}px\"></span> {}</td></tr>",
            esc(label),
            v / top * max_width,
            esc(shown)
        );
    }
    s.push_str("</table>");
    s
}

fn neuron_html(p: &NeuronPage) -> String {
    let mut s = format!(
        "<p><a href=\"../index.html\">← report</a></p><h1>{}</h1>",
        esc(&p.title)
    );
    s.push_str("<table>");
    for (k, v) in &p.facts {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    let _ = write!(
        s,
        "<tr><th>promotes</th><td>{}</td></tr><tr><th>suppresses</th><td>{}</td></tr></table>",
        esc(&p.promoted),
        esc(&p.suppressed)
    );
    s.push_str("<h2>Top activating contexts</h2><p>The activating token is highlighted; darker means a stronger activation.</p><table><tr><th>value</th><th>context</th></tr>");
    let top = p
        .contexts
        .iter()
        .map(|c| c.value.abs())
        .fold(0.0f64, f64::max)
        .max(1e-12);
    for c in &p.contexts {
        let alpha = 0.2 + 0.8 * (c.value.abs() / top);
        let _ = write!(
            s,
            "<tr><td>{:.3}</td><td class=\"ctx\">{}<span class=\"tok\" style=\"background:rgba(230,159,0,{alpha:.2})\">{}</span>{}</td></tr>",
            c.value,
            esc(&c.left),
            esc(&c.token),
            esc(&c.right)
        );
    }
    s.push_str("</table><h2>Concepts of the activating words</h2>");
    let concepts: Vec<(&str, f64, String)> = p
        .concepts
        .iter()
        .map(|(c, share)| (c.as_str(), *share, format!("{share:.3}")))
        .collect();
    s.push_str(&bars(&concepts, 300.0));
    s.push_str("<h2>Semantic entropy over checkpoints</h2>");
    s.push_str(&sparkline(
        &p.entropy_over_steps,
        "step",
        "normalised semantic entropy",
    ));
    s.push_str("<h2>Activation histogram (last checkpoint)</h2>");
    let bins: Vec<(&str, f64, String)> = p
        .histogram
        .iter()
        .map(|(bin, n)| (bin.as_str(), *n as f64, format_count(*n)))
        .collect();
    s.push_str(&bars(&bins, 300.0));
    s.push_str("<h2>Steering examples</h2>");
    if p.steering.is_empty() {
        s.push_str("<p>The steering evaluation did not use this neuron.</p>");
    }
    for (concept, text) in &p.steering {
        let _ = write!(
            s,
            "<p><b>{}</b>: <span class=\"ctx\">{}</span></p>",
            esc(concept),
            esc(text)
        );
    }
    page(&p.title, &s)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    let tmp = path.with_extension("html.tmp");
    std::fs::write(&tmp, text).map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

impl Report {
    /// The index page.
    pub fn index_html(&self) -> String {
        let mut s = format!("<h1>{}</h1>", esc(&self.title));
        for n in &self.notices {
            let _ = write!(s, "<p class=\"notice\">{}</p>", esc(n));
        }
        s.push_str("<h2>Run</h2><table>");
        for (k, v) in &self.summary {
            let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        }
        s.push_str("</table>");
        if !self.models.rows.is_empty() {
            s.push_str("<h2>Models</h2>");
            s.push_str(&table_html(&self.models, false));
        }
        if !self.stability.rows.is_empty() {
            s.push_str("<h2>Stability: TopK-LM neurons and post-hoc SAE latents</h2>");
            s.push_str("<p>Share of the features alive at the earlier checkpoint (or in the first SAE) whose one-to-one match keeps an activation cosine at or above the threshold; mean over layers and over the checkpoint pairs of the second half of training.</p>");
            s.push_str(&table_html(&self.stability, false));
        }
        s.push_str("<h2>Figures</h2>");
        for f in &self.figures {
            let _ = write!(
                s,
                "<figure><img src=\"{}\" alt=\"{}\"><figcaption><b>{}.</b> {} <a href=\"{}\">SVG</a> · <a href=\"{}\">data (CSV)</a></figcaption></figure>",
                esc(&f.png),
                esc(&f.title),
                esc(&f.title),
                esc(&f.caption),
                esc(&f.svg),
                esc(&f.csv)
            );
        }
        s.push_str("<h2>Most concept-specific neurons</h2><p>Lowest normalised semantic entropy at the last checkpoint, per model and layer (neurons with enough observations). Click a header to sort, a neuron to open its dashboard.</p>");
        if self.neurons.rows.is_empty() {
            s.push_str("<p class=\"notice\">No neuron statistics are available for this run.</p>");
        } else {
            s.push_str(&table_html(&self.neurons, true));
        }
        page(&self.title, &s)
    }

    /// Writes `index.html` and `neurons/<slug>.html` under `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        for p in &self.pages {
            write(
                &dir.join("neurons").join(format!("{}.html", p.slug)),
                &neuron_html(p),
            )?;
        }
        write(&dir.join("index.html"), &self.index_html())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_links_every_neuron_page_and_escapes_text() {
        let dir = tempfile::tempdir().unwrap();
        let report = Report {
            title: "Run <x>".into(),
            neurons: Table {
                headers: vec!["neuron".into()],
                rows: vec![vec!["topk L0 N3".into()]],
                links: vec![Some("neurons/topk-L0-N3.html".into())],
            },
            pages: vec![NeuronPage {
                slug: "topk-L0-N3".into(),
                title: "N3".into(),
                contexts: vec![Context {
                    left: "a <b".into(),
                    token: " dog".into(),
                    right: ".".into(),
                    value: 2.0,
                }],
                ..Default::default()
            }],
            notices: vec!["steering table missing".into()],
            ..Default::default()
        };
        report.write(dir.path()).unwrap();
        let index = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(index.contains("Run &lt;x&gt;") && index.contains("steering table missing"));
        assert!(index.contains("href=\"neurons/topk-L0-N3.html\""));
        let page = std::fs::read_to_string(dir.path().join("neurons/topk-L0-N3.html")).unwrap();
        assert!(page.contains("a &lt;b") && page.contains(" dog"));
    }
}
