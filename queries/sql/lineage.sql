-- lineage: each neuron between consecutive checkpoints of its model, identity by index,
-- verified by the similarity of its activations over the same evaluation tokens.
-- cosine = Σ a·b / (‖a‖‖b‖) over the activation vectors (0 where not recorded);
-- jaccard = |A ∩ B| / |A ∪ B| of the active-token sets.
-- event: birth (dead → active), death (active → dead), stable (cosine ≥ {{stable_cosine}}),
-- drift (otherwise), dead (dead at both).
-- Inputs:  neuron_stats (for the grid and dead flags), checkpoint_pairs, activations.
-- Run once per (model, layer) slice ({{slice}}), so a join holds one slice in memory.
-- read_cos / write_cos: cosine of the neuron's read and write weight vectors with the previous
-- checkpoint's (from `neurons`).
-- Output:  model, layer, neuron, step_prev, step, cosine, jaccard, n_prev, n_next, n_both,
--          read_cos, write_cos, event.
WITH acts AS (
    SELECT model, step, layer, neuron, token_index, value FROM activations WHERE {{slice}}
),
stats AS (
    SELECT model, step, layer, neuron FROM neuron_stats WHERE {{slice}}
),
pairs AS (
    SELECT model, layer, step, step_prev FROM checkpoint_pairs WHERE {{slice}}
),
norms AS (
    SELECT model, step, layer, neuron, SQRT(SUM(value * value)) AS norm, COUNT(*) AS n
    FROM acts
    GROUP BY model, step, layer, neuron
),
dots AS (
    SELECT p.model, p.step, x.layer, x.neuron,
           SUM(x.value * y.value) AS dot, COUNT(*) AS n_both
    FROM pairs p
    JOIN acts x ON x.model = p.model AND x.layer = p.layer AND x.step = p.step_prev
    JOIN acts y
      ON y.model = p.model AND y.step = p.step AND y.layer = x.layer
     AND y.neuron = x.neuron AND y.token_index = x.token_index
    GROUP BY p.model, p.step, x.layer, x.neuron
),
grid AS (
    SELECT s.model, s.layer, s.neuron, p.step_prev, s.step
    FROM stats s
    JOIN pairs p ON p.model = s.model AND p.layer = s.layer AND p.step = s.step
    WHERE p.step_prev IS NOT NULL
),
-- Each checkpoint's norms are the earlier side of one pair and the later side of another: one
-- pass over `norms` with a conditional aggregate (joining `norms` twice would compute it twice:
-- DataFusion evaluates a CTE once for each reference).
roles AS (
    SELECT model, layer, step_prev AS at_step, step, 0 AS role
    FROM pairs WHERE step_prev IS NOT NULL
    UNION ALL
    SELECT model, layer, step AS at_step, step, 1 AS role FROM pairs WHERE step_prev IS NOT NULL
),
paired AS (
    SELECT n.model, r.step, n.layer, n.neuron,
           MAX(CASE WHEN r.role = 0 THEN n.norm END) AS norm_prev,
           MAX(CASE WHEN r.role = 0 THEN n.n END) AS n_prev,
           MAX(CASE WHEN r.role = 1 THEN n.norm END) AS norm_next,
           MAX(CASE WHEN r.role = 1 THEN n.n END) AS n_next
    FROM norms n
    JOIN roles r ON r.model = n.model AND r.layer = n.layer AND r.at_step = n.step
    GROUP BY n.model, r.step, n.layer, n.neuron
)
SELECT g.model, g.layer, g.neuron, g.step_prev, g.step,
       COALESCE(d.dot / NULLIF(a.norm_prev * a.norm_next, 0), 0.0) AS cosine,
       COALESCE(CAST(d.n_both AS DOUBLE)
                / NULLIF(COALESCE(a.n_prev, 0) + COALESCE(a.n_next, 0) - COALESCE(d.n_both, 0), 0),
                0.0)
           AS jaccard,
       COALESCE(a.n_prev, 0) AS n_prev,
       COALESCE(a.n_next, 0) AS n_next,
       COALESCE(d.n_both, 0) AS n_both,
       w.read_cos_prev AS read_cos,
       w.write_cos_prev AS write_cos,
       CASE
           WHEN a.n_prev IS NULL AND a.n_next IS NULL THEN 'dead'
           WHEN a.n_prev IS NULL THEN 'birth'
           WHEN a.n_next IS NULL THEN 'death'
           WHEN COALESCE(d.dot / NULLIF(a.norm_prev * a.norm_next, 0), 0.0) >= {{stable_cosine}} THEN 'stable'
           ELSE 'drift'
       END AS event
FROM grid g
LEFT JOIN paired a ON a.model = g.model AND a.step = g.step AND a.layer = g.layer AND a.neuron = g.neuron
LEFT JOIN dots d ON d.model = g.model AND d.step = g.step AND d.layer = g.layer AND d.neuron = g.neuron
LEFT JOIN neurons w ON w.model = g.model AND w.step = g.step AND w.layer = g.layer AND w.neuron = g.neuron
