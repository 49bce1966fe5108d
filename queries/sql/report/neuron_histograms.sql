-- neuron_histograms: activation values at the last checkpoint in 10 bins from 0 to each
-- neuron's maximum (neuron dashboards).
WITH m AS (
    SELECT model, layer, neuron, MAX(value) AS top FROM latest_activations GROUP BY model, layer, neuron
)
SELECT a.model, a.layer, a.neuron,
       LEAST(CAST(FLOOR(GREATEST(a.value, 0) / NULLIF(m.top, 0) * 10) AS INT), 9) AS bin,
       m.top, COUNT(*) AS n
FROM latest_activations a JOIN m ON a.model = m.model AND a.layer = m.layer AND a.neuron = m.neuron
GROUP BY a.model, a.layer, a.neuron, bin, m.top
ORDER BY a.model, a.layer, a.neuron, bin
