-- cross_layer_summary: mean cosine between neuron i of layer l and neuron i of layer l + 1,
-- per model, layer pair and checkpoint (figure 5b).
SELECT model, layer, step, AVG(cosine) AS mean_cosine
FROM cross_layer
GROUP BY model, layer, step
ORDER BY model, layer, step
