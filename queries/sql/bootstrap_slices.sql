-- bootstrap_slices: the (model, step, layer) slices the bootstrap resamples: every layer of
-- each model at its last recorded checkpoint. Read from `neurons` (one row per neuron), so
-- finding them reads no activations.
-- Inputs:  neurons.
-- Output:  model, step, layer.
WITH last AS (
    SELECT model, MAX(step) AS step FROM neurons GROUP BY model
)
SELECT DISTINCT n.model, n.step, n.layer
FROM neurons n
JOIN last ON n.model = last.model AND n.step = last.step
ORDER BY n.model, n.step, n.layer
