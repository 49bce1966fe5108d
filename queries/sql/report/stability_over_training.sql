-- stability_over_training: share of features surviving from each checkpoint to the next, mean
-- over layers, per model and method (the stability figure); SAE seed-vs-seed pairs included.
-- Inputs:  stability.
SELECT model, comparison, method, step,
       AVG(share_stable) AS share_stable
FROM stability
WHERE share_stable IS NOT NULL
GROUP BY model, comparison, method, step
ORDER BY model, comparison, method, step
