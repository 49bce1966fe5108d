-- top_neurons: the {{limit}} most concept-specific neurons per model and layer at the last
-- checkpoint (lowest normalised semantic entropy among neurons with enough observations).
WITH last AS (SELECT model, MAX(step) AS step FROM semantic_entropy GROUP BY model),
ranked AS (
    SELECT s.*, ROW_NUMBER() OVER (PARTITION BY s.model, s.layer ORDER BY s.entropy_norm, s.neuron) AS rank
    FROM semantic_entropy s JOIN last l ON s.model = l.model AND s.step = l.step
    WHERE NOT s.low_count
)
SELECT r.model, r.step, r.layer, r.neuron, r.top_concept, r.top_share, r.entropy_norm AS semantic_entropy,
       t.entropy_norm AS token_entropy, n.frequency, n.max_value, r.n_obs,
       w.top_promoted, w.top_suppressed, f.formation_step
FROM ranked r
LEFT JOIN token_entropy t ON t.model = r.model AND t.step = r.step AND t.layer = r.layer AND t.neuron = r.neuron
LEFT JOIN neuron_stats n ON n.model = r.model AND n.step = r.step AND n.layer = r.layer AND n.neuron = r.neuron
LEFT JOIN neurons w ON w.model = r.model AND w.step = r.step AND w.layer = r.layer AND w.neuron = r.neuron
LEFT JOIN formation f ON f.model = r.model AND f.layer = r.layer AND f.neuron = r.neuron
WHERE r.rank <= {{limit}}
ORDER BY r.model, r.layer, r.rank
