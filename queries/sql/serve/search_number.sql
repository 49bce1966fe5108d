-- search_number: neuron {{neuron}} of one model and checkpoint in every layer (or {{layer}}).
-- Inputs:  neuron_stats, semantic_entropy, token_entropy.
-- Output:  as search_concept (score = frequency).
SELECT n.model, n.step, n.layer, n.neuron, s.top_concept, s.top_share,
       s.entropy_norm AS semantic_entropy, t.entropy_norm AS token_entropy,
       n.frequency, n.max_value, s.n_obs, n.frequency AS score
FROM neuron_stats n
LEFT JOIN semantic_entropy s
  ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
LEFT JOIN token_entropy t
  ON t.model = n.model AND t.step = n.step AND t.layer = n.layer AND t.neuron = n.neuron
WHERE n.model = {{model}} AND n.step = {{step}} AND n.neuron = {{neuron}}
  AND ({{layer}} IS NULL OR n.layer = {{layer}})
  AND COALESCE(s.entropy_norm, 0) BETWEEN {{min_entropy}} AND {{max_entropy}}
  AND n.frequency BETWEEN {{min_frequency}} AND {{max_frequency}}
ORDER BY n.layer
LIMIT {{limit}}
