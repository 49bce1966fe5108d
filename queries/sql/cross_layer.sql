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
)
SELECT a.model, a.step, a.layer, a.neuron,
       COALESCE(d.dot / NULLIF(a.norm * b.norm, 0), 0.0) AS cosine,
       COALESCE(CAST(d.n_both AS DOUBLE) / NULLIF(a.n + b.n - COALESCE(d.n_both, 0), 0), 0.0) AS jaccard,
       a.n AS n_lower,
       b.n AS n_upper
FROM norms a
JOIN norms b
  ON b.model = a.model AND b.step = a.step AND b.layer = a.layer + 1 AND b.neuron = a.neuron
LEFT JOIN dots d
  ON d.model = a.model AND d.step = a.step AND d.layer = a.layer AND d.neuron = a.neuron
