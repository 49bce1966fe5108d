-- neuron_concepts: share of each concept in every neuron's activation weight at the last
-- checkpoint (neuron dashboards).
WITH w AS (
    SELECT a.model, a.layer, a.neuron, t.concept, SUM(ABS(a.value)) AS w
    FROM latest_activations a JOIN tokens t ON a.token_index = t.token_index
    WHERE t.concept IS NOT NULL
    GROUP BY a.model, a.layer, a.neuron, t.concept
)
SELECT model, layer, neuron, concept, w / SUM(w) OVER (PARTITION BY model, layer, neuron) AS share
FROM w
ORDER BY model, layer, neuron, share DESC
