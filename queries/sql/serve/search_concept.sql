-- search_concept: neurons of one model and checkpoint whose top concept is {{concept}}, the
-- most concept-specific first (neurons with too few observations, low_count, last). NULL
-- parameters mean "any".
-- Inputs:  semantic_entropy, token_entropy, neuron_stats.
-- Output:  model, step, layer, neuron, top_concept, top_share, semantic_entropy, token_entropy,
--          frequency, max_value, n_obs, low_count, score (= top_share).
SELECT s.model, s.step, s.layer, s.neuron, s.top_concept, s.top_share,
       s.entropy_norm AS semantic_entropy, t.entropy_norm AS token_entropy,
       n.frequency, n.max_value, s.n_obs, s.low_count, s.top_share AS score
FROM semantic_entropy s
LEFT JOIN token_entropy t
  ON t.model = s.model AND t.step = s.step AND t.layer = s.layer AND t.neuron = s.neuron
LEFT JOIN neuron_stats n
  ON n.model = s.model AND n.step = s.step AND n.layer = s.layer AND n.neuron = s.neuron
WHERE s.model = {{model}} AND s.step = {{step}}
  AND ({{layer}} IS NULL OR s.layer = {{layer}})
  AND s.top_concept = {{concept}}
  AND s.entropy_norm BETWEEN {{min_entropy}} AND {{max_entropy}}
  AND COALESCE(n.frequency, 0) BETWEEN {{min_frequency}} AND {{max_frequency}}
ORDER BY s.low_count, s.top_share DESC, s.entropy_norm, s.layer, s.neuron
LIMIT {{limit}}
