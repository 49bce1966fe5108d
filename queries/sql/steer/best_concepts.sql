-- best_concepts: the {{limit}} concepts with the most specialised neurons in the TopK layers
-- (below layer {{topk_layers}}) of model '{{model}}' at its last step: the default concepts of
-- the steering evaluation.
-- Inputs:  semantic_entropy.  Output: top_concept, best_entropy.
WITH last AS (SELECT MAX(step) AS step FROM semantic_entropy WHERE model = '{{model}}')
SELECT s.top_concept, MIN(s.entropy_norm) AS best_entropy
FROM semantic_entropy s JOIN last l ON s.step = l.step
WHERE s.model = '{{model}}' AND s.layer < {{topk_layers}} AND NOT s.low_count AND s.top_concept <> 'none'
GROUP BY s.top_concept
ORDER BY best_entropy, s.top_concept
LIMIT {{limit}}
