// The explorer's page: one view per URL hash (#/search?…, #/neuron?…, #/compare?…, #/steer?…,
// #/sql?…), each drawn from the JSON of /api/. Every value from the run is inserted as text
// (el() makes text nodes), never as markup.
"use strict";

let overview = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svgEl(tag, attrs, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children.flat()) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

const fmt = (v, digits = 3) =>
  v === null || v === undefined ? "—" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(digits)) : String(v);

// Counts with thousands separators (11,000, not 11000 or 11.000).
const count = (n) => Number(n).toLocaleString("en-US");

function hash(view, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  return `#/${view}?${q}`;
}

async function api(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const res = await fetch(`/api/${path}?${q}`);
  const body = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
  return body;
}

function notices(list) {
  return (list || []).map((n) => el("div", { class: "notice" }, n));
}

function neuronLink(r, label) {
  return el("a", { href: hash("neuron", { model: r.model, layer: r.layer, neuron: r.neuron, step: r.step }) },
    label || `${r.model} L${r.layer} N${r.neuron}`);
}

// A table whose columns sort on a click; `cell(row, col)` may return a node.
function sortable(columns, rows, cell) {
  let key = null, asc = true;
  const body = el("tbody");
  const draw = () => {
    const sorted = key === null ? rows : [...rows].sort((a, b) => {
      const x = a[key], y = b[key];
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    body.replaceChildren(...sorted.map((r) => el("tr", {}, columns.map((c) => {
      const v = cell ? cell(r, c) : r[c];
      return el("td", { class: typeof r[c] === "number" ? "num" : "" }, v instanceof Node ? v : fmt(v));
    }))));
  };
  const head = el("tr", {}, columns.map((c) => el("th", { onclick: () => { asc = key === c ? !asc : true; key = c; draw(); } }, c)));
  draw();
  return el("table", {}, el("thead", {}, head), body);
}

function field(label, input) {
  return el("label", {}, label, input);
}

function input(name, value, attrs) {
  return el("input", Object.assign({ name, value: value ?? "" }, attrs || {}));
}

function select(name, options, value) {
  return el("select", { name }, options.map(([v, label]) => el("option", { value: v, selected: String(v) === String(value ?? "") }, label)));
}

function modelOptions(any) {
  const names = (overview?.models || []).map((m) => [m.name, m.name]);
  return any ? [["", "any"], ...names] : names;
}

function formValues(form) {
  return Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ""));
}

function bars(rows, label) {
  if (!rows.length) return el("p", { class: "muted" }, "nothing recorded");
  return rows.map((r) => el("div", { class: "bar" },
    el("span", { class: "fill", style: `width:${Math.round(200 * r.share)}px` }),
    el("span", {}, r[label]), el("span", { class: "muted" }, `${(100 * r.share).toFixed(1)}% · ${count(r.n)}`)));
}

// Line chart of series [{name, color, points: [[x, y]]}] with x on a log-ish index axis.
function lineChart(xs, series, { yMin = 0, yMax = 1, width = 520, height = 180, marks = [] } = {}) {
  const pad = 32, w = width - 2 * pad, h = height - 2 * pad;
  const xi = (x) => pad + (xs.length > 1 ? (xs.indexOf(x) / (xs.length - 1)) * w : w / 2);
  const yv = (y) => pad + h - ((y - yMin) / (yMax - yMin || 1)) * h;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  svg.append(svgEl("line", { x1: pad, y1: pad + h, x2: pad + w, y2: pad + h, stroke: "#999" }));
  for (const t of [yMin, (yMin + yMax) / 2, yMax]) svg.append(svgEl("text", { x: 2, y: yv(t) + 4 }, fmt(t, 2)));
  xs.forEach((x, i) => { if (i % Math.ceil(xs.length / 8) === 0 || i === xs.length - 1) svg.append(svgEl("text", { x: xi(x) - 8, y: height - 8 }, x)); });
  for (const s of series) {
    const pts = s.points.filter(([, y]) => y !== null && y !== undefined);
    if (!pts.length) continue;
    svg.append(svgEl("polyline", { points: pts.map(([x, y]) => `${xi(x)},${yv(y)}`).join(" "), fill: "none", stroke: s.color, "stroke-width": 2 }));
    for (const [x, y] of pts) svg.append(svgEl("circle", { cx: xi(x), cy: yv(y), r: 2.5, fill: s.color }));
    svg.append(svgEl("text", { x: pad + 150 * series.indexOf(s), y: 12, fill: s.color }, s.name));
  }
  for (const [x, label] of marks) svg.append(svgEl("text", { x: xi(x) - 10, y: pad + h - 4, fill: "#b3261e" }, label));
  return svg;
}

function histogram(rows) {
  if (!rows.length) return el("p", { class: "muted" }, "no activations at this step");
  const width = 520, height = 150, pad = 28, w = (width - 2 * pad) / rows.length;
  const max = Math.max(...rows.map((r) => r.n));
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img" });
  rows.forEach((r, i) => {
    const bh = ((height - 2 * pad) * r.n) / max;
    svg.append(svgEl("rect", { x: pad + i * w, y: height - pad - bh, width: w - 1, height: bh, fill: "#2f6fde" }, svgEl("title", {}, `${fmt(r.lo)}–${fmt(r.hi)}: ${count(r.n)}`)));
  });
  svg.append(svgEl("text", { x: pad, y: height - 8 }, fmt(rows[0].lo, 2)));
  svg.append(svgEl("text", { x: width - pad - 30, y: height - 8 }, fmt(rows[rows.length - 1].hi, 2)));
  svg.append(svgEl("text", { x: 2, y: pad }, count(max)));
  return svg;
}

// ── views ───────────────────────────────────────────────────────────────────────────────

async function searchView(p) {
  const form = el("form", { id: "search-form", onsubmit: (e) => { e.preventDefault(); location.hash = hash("search", formValues(form)); } },
    field("concept, word or neuron number", input("q", p.q, { id: "search-q", list: "concepts", placeholder: "noun.food, bread, 17", size: 28 })),
    field("kind", select("kind", [["", "auto"], ["concept", "concept"], ["word", "word"], ["neuron", "neuron"]], p.kind)),
    field("model", select("model", modelOptions(true), p.model)),
    field("layer", input("layer", p.layer, { type: "number", min: 0, style: "width:5em" })),
    field("step (default: last)", input("step", p.step, { type: "number", min: 0, style: "width:7em" })),
    field("entropy from", input("min_entropy", p.min_entropy, { type: "number", step: "0.05", min: 0, max: 1, style: "width:5em" })),
    field("to", input("max_entropy", p.max_entropy, { type: "number", step: "0.05", min: 0, max: 1, style: "width:5em" })),
    field("frequency from", input("min_frequency", p.min_frequency, { type: "number", step: "0.001", min: 0, max: 1, style: "width:6em" })),
    field("to", input("max_frequency", p.max_frequency, { type: "number", step: "0.001", min: 0, max: 1, style: "width:6em" })),
    el("button", { type: "submit" }, "Search"),
    el("datalist", { id: "concepts" }, (overview?.concepts || []).map((c) => el("option", { value: c }))));
  const out = el("div", { id: "results" });
  view([el("h2", {}, "Search neurons"), form, out]);
  if (!p.q) {
    out.append(el("p", { class: "muted" }, "Search by concept (the neurons whose top concept it is, most specific first), by word (the neurons that fire most on it) or by neuron number."));
    return;
  }
  const r = await api("search", p);
  const cols = ["model", "step", "layer", "neuron", "top_concept", "top_share", "semantic_entropy", "token_entropy", "frequency", "max_value", "n_obs", "score"];
  out.replaceChildren(...notices(r.notices), el("p", {}, `${r.rows.length} neurons for ${r.kind} “${r.q}”`),
    sortable(cols, r.rows, (row, c) => (c === "neuron" ? neuronLink(row, String(row.neuron)) : row[c])));
}

async function neuronView(p) {
  const r = await api("neuron", p);
  const here = { model: r.model, layer: r.layer, neuron: r.neuron };
  const at = r.over_steps.find((s) => s.step === r.step) || {};
  const idx = r.steps.indexOf(r.step);
  const slider = el("input", { id: "step-slider", type: "range", min: 0, max: r.steps.length - 1, value: idx,
    onchange: (e) => { location.hash = hash("neuron", { ...here, step: r.steps[+e.target.value] }); },
    oninput: (e) => { label.textContent = `step ${r.steps[+e.target.value]}`; } });
  const label = el("strong", { id: "step-label" }, `step ${r.step}`);
  const maxv = Math.max(1e-9, ...r.contexts.map((c) => c.value));
  const contexts = r.contexts.length ? r.contexts.map((c) => el("div", { class: "context" },
    el("span", { class: "muted" }, `${fmt(c.value, 2)}  `),
    c.tokens.map((t) => el("span", {
      class: t.offset === 0 ? "tok centre" : "tok",
      title: fmt(t.value, 3),
      style: `background: rgba(47,111,222,${Math.max(0, Math.min(1, t.value / maxv)) * 0.75})`,
    }, t.text)))) : [el("p", { class: "muted" }, "not active at this step")];
  const steps = r.over_steps.map((s) => s.step);
  const lineage = r.over_steps.length ? lineChart(steps, [
    { name: "cosine to previous", color: "#2f6fde", points: r.over_steps.map((s) => [s.step, s.cosine]) },
    { name: "semantic entropy", color: "#e07b00", points: r.over_steps.map((s) => [s.step, s.semantic_entropy]) },
    { name: "token entropy", color: "#3a9a4a", points: r.over_steps.map((s) => [s.step, s.token_entropy]) },
  ], { marks: r.over_steps.filter((s) => s.event === "birth" || s.event === "death").map((s) => [s.step, s.event]) }) : el("p", { class: "muted" }, "run `pipeline analyze` for the history");
  const weights = r.weights ? [
    el("p", {}, el("strong", {}, "promotes: "), r.weights.top_promoted ?? "—"),
    el("p", {}, el("strong", {}, "suppresses: "), r.weights.top_suppressed ?? "—"),
  ] : [el("p", { class: "muted" }, "no weights recorded")];
  const steerLink = el("a", { href: hash("steer", { model: r.model, step: r.step, neurons: `${r.layer}:${r.neuron}`, mode: "add", strength: 4 }) }, "steer this neuron →");
  view([
    el("h2", { id: "neuron-title" }, `${r.model} · layer ${r.layer} · neuron ${r.neuron}`),
    ...notices(r.notices),
    el("div", { class: "slider" }, el("span", {}, `step ${r.steps[0]}`), slider, el("span", {}, `step ${r.steps[r.steps.length - 1]}`), label, steerLink),
    el("p", {}, `frequency ${fmt(at.frequency, 4)} · max ${fmt(at.max_value, 2)} · token entropy ${fmt(at.token_entropy)} · semantic entropy ${fmt(at.semantic_entropy)} · top concept ${fmt(at.top_concept)} (${fmt(at.top_share, 2)}) · ${at.event ? "lineage: " + at.event : ""}`),
    el("div", { class: "grid" },
      el("div", { class: "card", id: "contexts" }, el("h3", {}, `Top contexts at step ${r.step}`), contexts),
      el("div", { class: "card" }, el("h3", {}, "Over training"), lineage),
      el("div", { class: "card" }, el("h3", {}, "Concepts"), bars(r.concepts, "label")),
      el("div", { class: "card" }, el("h3", {}, "Tokens"), bars(r.tokens, "label")),
      el("div", { class: "card" }, el("h3", {}, "Activation histogram"), histogram(r.histogram)),
      el("div", { class: "card" }, el("h3", {}, "Output weights"), weights),
      el("div", { class: "card" }, el("h3", {}, `Neuron ${r.neuron} in every layer`),
        sortable(["layer", "frequency", "dead", "top_concept", "top_share", "semantic_entropy"], r.layers,
          (row, c) => (c === "layer" ? neuronLink({ ...here, layer: row.layer, step: r.step }, `layer ${row.layer}`) : row[c]))),
      el("div", { class: "card" }, el("h3", {}, "Matches"), r.matches.length
        ? sortable(["comparison", "direction", "other_model", "other_step", "other_neuron", "cosine"], r.matches,
          (row, c) => (c === "other_neuron" ? neuronLink({ model: row.other_model, layer: r.layer, neuron: row.other_neuron, step: row.other_step }, String(row.other_neuron)) : row[c]))
        : el("p", { class: "muted" }, "no matches recorded at this step")),
    ),
  ]);
}

async function compareView(p) {
  const model = p.model_a || overview?.models?.[0]?.name;
  const form = el("form", { onsubmit: (e) => { e.preventDefault(); location.hash = hash("compare", formValues(form)); } },
    field("model A", select("model_a", modelOptions(false), model)),
    field("step A", input("step_a", p.step_a, { type: "number", min: 0, style: "width:7em" })),
    field("model B", select("model_b", [["", "same"], ...modelOptions(false)], p.model_b)),
    field("step B (default: last)", input("step_b", p.step_b, { type: "number", min: 0, style: "width:7em" })),
    field("layer", input("layer", p.layer ?? 0, { type: "number", min: 0, style: "width:5em" })),
    el("button", { type: "submit" }, "Compare"));
  const out = el("div");
  view([el("h2", {}, "Compare two checkpoints"), form, out]);
  if (!p.model_a) return;
  const r = await api("compare", p);
  out.replaceChildren(...notices(r.notices),
    el("p", {}, `${r.a.model}@${r.a.step} → ${r.b.model}@${r.b.step}, layer ${r.layer}: `,
      Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(" · ")),
    el("div", { class: "grid" },
      el("div", { class: "card" }, el("h3", {}, "Neurons that changed"),
        sortable(["neuron", "change", "concept_a", "concept_b", "frequency_a", "frequency_b"], r.neurons.filter((n) => n.change !== "same" && n.change !== "dead"),
          (row, c) => (c === "neuron" ? neuronLink({ model: r.b.model, layer: r.layer, neuron: row.neuron, step: r.b.step }, String(row.neuron)) : row[c]))),
      el("div", { class: "card" }, el("h3", {}, "Neurons per top concept"), sortable(["concept", "n_a", "n_b"], r.concepts))));
}

async function steerView(p) {
  const form = el("form", { id: "steer-form", onsubmit: (e) => { e.preventDefault(); location.hash = hash("steer", formValues(form)); } },
    field("model", select("model", modelOptions(false), p.model)),
    field("step (default: last)", input("step", p.step, { type: "number", min: 0, style: "width:7em" })),
    field("neurons (layer:neuron, …)", input("neurons", p.neurons, { id: "steer-neurons", placeholder: "1:17", size: 14 })),
    field("mode", select("mode", [["add", "add (boost)"], ["set", "set (clamp)"], ["scale", "scale"]], p.mode || "add")),
    field("strength (× max activation)", input("strength", p.strength ?? 4, { type: "number", step: "0.5", style: "width:6em" })),
    field("tokens", input("tokens", p.tokens ?? 40, { type: "number", min: 1, max: 200, style: "width:5em" })),
    field("seed", input("seed", p.seed, { type: "number", min: 0, style: "width:7em" })),
    field("prompt", input("prompt", p.prompt ?? "Once upon a time,", { size: 40 })),
    el("button", { type: "submit" }, "Generate"));
  const out = el("div", { id: "steer-out" });
  view([el("h2", {}, "Steering playground"), form, out]);
  if (!p.model || !p.neurons) return;
  out.append(el("p", { class: "muted" }, "generating…"));
  const r = await api("steer", p);
  const text = (pieces) => el("div", { class: "text" }, el("span", { class: "muted" }, r.prompt), pieces.map((x) => (x.concept ? el("span", { class: "concept" }, x.text) : x.text)));
  const share = (v) => (v === null || v === undefined ? "" : ` · ${r.concept} share ${(100 * v).toFixed(1)}%`);
  out.replaceChildren(...notices(r.notices),
    el("p", {}, `${r.model} step ${r.step}, seed ${r.seed}: `, r.edits.map((e) => `L${e.layer} N${e.neuron} ${r.mode} ${fmt(e.value, 2)}`).join(", ")),
    el("div", { class: "texts" },
      el("div", { id: "plain" }, el("h3", {}, `Unsteered${share(r.concept_share_plain)}`), text(r.plain)),
      el("div", { id: "steered" }, el("h3", {}, `Steered${share(r.concept_share_steered)}`), text(r.steered))));
}

async function sqlView(p) {
  const area = el("textarea", { name: "q", id: "sql-q" }, p.q || "SELECT model, layer, COUNT(*) AS neurons, AVG(entropy_norm) AS semantic_entropy\nFROM semantic_entropy GROUP BY model, layer ORDER BY model, layer");
  const form = el("form", { onsubmit: (e) => { e.preventDefault(); location.hash = hash("sql", { q: area.value }); } }, area, el("button", { type: "submit", id: "sql-run" }, "Run"));
  const out = el("div", { id: "sql-out" });
  view([el("h2", {}, "SQL (read-only)"), form, out]);
  if (!p.q) return;
  const r = await api("sql", p);
  const rows = r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
  out.append(el("p", {}, `${r.total_rows} rows in ${r.elapsed_ms.toFixed(0)} ms${r.truncated ? ` (first ${r.rows.length} shown)` : ""} · `,
    el("a", { href: `/api/sql.csv?${new URLSearchParams({ q: p.q })}`, download: "query.csv" }, "download CSV")), sortable(r.columns, rows));
}

// ── routing ─────────────────────────────────────────────────────────────────────────────

function view(children) {
  document.getElementById("view").replaceChildren(...children);
}

async function route() {
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const p = Object.fromEntries(new URLSearchParams(query || ""));
  const views = { search: searchView, neuron: neuronView, compare: compareView, steer: steerView, sql: sqlView };
  const name = views[path] ? path : "search";
  for (const a of document.querySelectorAll("header a")) a.classList.toggle("active", a.getAttribute("href") === `#/${name}`);
  document.body.dataset.view = name;
  document.body.dataset.state = "loading";
  try {
    await views[name](p);
    document.body.dataset.state = "ready";
  } catch (e) {
    view([el("h2", {}, "Error"), el("p", { class: "error", id: "error" }, e.message)]);
    document.body.dataset.state = "error";
  }
}

async function start() {
  try {
    overview = await api("overview");
    document.getElementById("run").textContent = overview.run;
    document.getElementById("notices").replaceChildren(...notices(overview.notices));
  } catch (e) {
    document.getElementById("notices").replaceChildren(el("div", {}, `cannot read the run: ${e.message}`));
  }
  window.addEventListener("hashchange", route);
  route();
}

start();
