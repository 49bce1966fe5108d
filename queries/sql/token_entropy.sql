-- token_entropy: Shannon entropy (bits) of the distribution over token ids of the tokens where
-- a neuron is active, each token weighted by {{weight}} (|value| by default, or 1 per
-- activation). H = log2(W) - Σ w·log2(w) / W with W = Σ w over the neuron's token ids.
-- Inputs:  activations (as activations_by_neuron: the aggregation streams neuron by neuron),
--          tokens.
-- Output:  model, step, layer, neuron, entropy_bits, entropy_norm (H / log2(n_categories);
--          0 when one category), n_categories, n_obs (activations behind it), top_token_id,
--          top_share, low_count (n_obs < {{min_count}}).
WITH w AS (
    SELECT a.model, a.step, a.layer, a.neuron, t.token_id AS category,
           SUM({{weight}}) AS w, COUNT(*) AS n
    FROM activations_by_neuron a
    JOIN tokens t ON a.token_index = t.token_index
    GROUP BY a.model, a.step, a.layer, a.neuron, t.token_id
    HAVING SUM({{weight}}) > 0
)
SELECT model, step, layer, neuron,
       LOG2(SUM(w)) - SUM(w * LOG2(w)) / SUM(w) AS entropy_bits,
       CASE WHEN COUNT(*) > 1
            THEN (LOG2(SUM(w)) - SUM(w * LOG2(w)) / SUM(w)) / LOG2(CAST(COUNT(*) AS DOUBLE))
            ELSE 0.0 END AS entropy_norm,
       COUNT(*) AS n_categories,
       SUM(n) AS n_obs,
       FIRST_VALUE(category ORDER BY w DESC, category ASC) AS top_token_id,
       MAX(w) / SUM(w) AS top_share,
       SUM(n) < {{min_count}} AS low_count
FROM w
GROUP BY model, step, layer, neuron
