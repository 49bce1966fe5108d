-- entropy_by_layer: median and quartiles of normalised entropies per layer at each model's
-- last checkpoint (figure 2).
WITH last AS (SELECT model, MAX(step) AS step FROM layer_summary GROUP BY model)
SELECT s.model, s.layer,
       s.token_entropy_median, s.token_entropy_q1, s.token_entropy_q3,
       s.semantic_entropy_median, s.semantic_entropy_q1, s.semantic_entropy_q3
FROM layer_summary s JOIN last l ON s.model = l.model AND s.step = l.step
ORDER BY s.model, s.layer
