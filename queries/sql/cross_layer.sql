-- cross_layer: neuron i of layer l against neuron i of layer l + 1 at the same checkpoint (the
-- paper's "consistent neurons across layers"): cosine of activation vectors and Jaccard of
-- active-token sets over the evaluation tokens.
-- Inputs:  activations.
-- Run once per (model, step) slice ({{slice}}), so a join holds one slice in memory.
-- Output:  model, step, layer (the lower one), neuron, cosine, jaccard, n_lower, n_upper.
WITH acts AS (
    SELECT model, step, layer, neuron, token_index, value FROM activations WHERE {{slice}}
),
norms AS (
    SELECT model, step, layer, neuron, SQRT(SUM(value * value)) AS norm, COUNT(*) AS n
    FROM acts
    GROUP BY model, step, layer, neuron
),
dots AS (
    SELECT x.model, x.step, x.layer, x.neuron, SUM(x.value * y.value) AS dot, COUNT(*) AS n_both
    FROM acts x
    JOIN acts y
      ON y.model = x.model AND y.step = x.step AND y.layer = x.layer + 1
     AND y.neuron = x.neuron AND y.token_index = x.token_index
    GROUP BY x.model, x.step, x.layer, x.neuron
),
-- Each layer's norms are the lower side of one pair and the upper side of the one below:
-- one pass over `norms` with a conditional aggregate. (A self-join `norms a JOIN norms b`
-- reads the slice twice: DataFusion computes a CTE once for each reference.)
paired AS (
    SELECT n.model, n.step, CAST(n.layer - r.shift AS SMALLINT UNSIGNED) AS layer, n.neuron,
           MAX(CASE WHEN r.shift = 0 THEN n.norm END) AS norm_lower,
           MAX(CASE WHEN r.shift = 0 THEN n.n END) AS n_lower,
           MAX(CASE WHEN r.shift = 1 THEN n.norm END) AS norm_upper,
           MAX(CASE WHEN r.shift = 1 THEN n.n END) AS n_upper
    FROM norms n
    CROSS JOIN (SELECT 0 AS shift UNION ALL SELECT 1 AS shift) r
    WHERE n.layer >= r.shift
    GROUP BY n.model, n.step, CAST(n.layer - r.shift AS SMALLINT UNSIGNED), n.neuron
)
SELECT p.model, p.step, p.layer, p.neuron,
       COALESCE(d.dot / NULLIF(p.norm_lower * p.norm_upper, 0), 0.0) AS cosine,
       COALESCE(CAST(d.n_both AS DOUBLE)
                / NULLIF(p.n_lower + p.n_upper - COALESCE(d.n_both, 0), 0), 0.0) AS jaccard,
       p.n_lower,
       p.n_upper
FROM paired p
LEFT JOIN dots d
  ON d.model = p.model AND d.step = p.step AND d.layer = p.layer AND d.neuron = p.neuron
WHERE p.n_lower IS NOT NULL AND p.n_upper IS NOT NULL
