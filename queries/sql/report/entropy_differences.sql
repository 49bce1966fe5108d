-- entropy_differences: each TopK model's median normalised entropy minus the dense
-- baseline's, per layer at the last checkpoint, with its 95% bootstrap interval (figure).
-- Inputs:  entropy_differences.
SELECT model, baseline, measure, layer, difference, lo, hi
FROM entropy_differences
ORDER BY model, baseline, measure, layer
