-- neuron_stats: one row per (model, step, layer, neuron), dead neurons included.
-- Inputs:  neurons (every neuron of every recorded partition), activations (as
--          activations_by_neuron: the aggregation streams neuron by neuron), tokens.
-- Output:  model, step, layer, neuron, n_active, frequency (share of evaluation tokens where the
--          neuron is among the recorded top-k), mean_value, max_value, n_distinct_tokens,
--          n_distinct_concepts, dead (never active on the evaluation set).
WITH n_eval AS (
    SELECT CAST(COUNT(*) AS DOUBLE) AS n FROM tokens
),
active AS (
    SELECT a.model, a.step, a.layer, a.neuron,
           COUNT(*) AS n_active,
           AVG(a.value) AS mean_value,
           MAX(a.value) AS max_value,
           COUNT(DISTINCT t.token_id) AS n_distinct_tokens,
           COUNT(DISTINCT t.concept_id) AS n_distinct_concepts
    FROM activations_by_neuron a
    JOIN tokens t ON a.token_index = t.token_index
    GROUP BY a.model, a.step, a.layer, a.neuron
)
SELECT n.model, n.step, n.layer, n.neuron,
       COALESCE(s.n_active, 0) AS n_active,
       COALESCE(s.n_active, 0) / (SELECT n FROM n_eval) AS frequency,
       s.mean_value,
       s.max_value,
       COALESCE(s.n_distinct_tokens, 0) AS n_distinct_tokens,
       COALESCE(s.n_distinct_concepts, 0) AS n_distinct_concepts,
       s.n_active IS NULL AS dead
FROM neurons n
LEFT JOIN active s
  ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
