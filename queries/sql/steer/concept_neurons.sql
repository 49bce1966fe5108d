-- concept_neurons: per layer, the neuron whose top concept is '{{concept}}' with the lowest
-- normalised semantic entropy at step {{step}} of model '{{model}}' (enough observations only).
-- Inputs:  semantic_entropy, neuron_stats.
-- Output:  layer, neuron, entropy_norm, top_share, n_obs, max_value.
WITH ranked AS (
    SELECT s.layer, s.neuron, s.entropy_norm, s.top_share, s.n_obs, n.max_value,
           ROW_NUMBER() OVER (PARTITION BY s.layer ORDER BY s.entropy_norm, s.neuron) AS rank
    FROM semantic_entropy s
    JOIN neuron_stats n
      ON n.model = s.model AND n.step = s.step AND n.layer = s.layer AND n.neuron = s.neuron
    WHERE s.model = '{{model}}' AND s.step = {{step}} AND s.top_concept = '{{concept}}'
      AND NOT s.low_count
)
SELECT layer, neuron, entropy_norm, top_share, n_obs, max_value FROM ranked WHERE rank = 1 ORDER BY layer
