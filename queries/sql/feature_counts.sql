-- feature_counts: how many features (neurons or SAE latents) each recording has per layer, the
-- size of its similarity matrix.
-- Inputs:  neurons.
-- Output:  model, step, layer, n_features.
SELECT model, step, layer, MAX(neuron) + 1 AS n_features
FROM neurons
GROUP BY model, step, layer
