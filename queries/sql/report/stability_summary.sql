-- stability_summary: the stability table of the report: per model, comparison and method, the
-- mean share of surviving features and mean matched cosine over layers and over the checkpoint
-- pairs in the second half of training (seed pairs: the last checkpoint, as two trained
-- models are compared at every step they share).
-- Inputs:  stability.
WITH last AS (SELECT MAX(step) AS s FROM stability)
SELECT model, comparison, method,
       AVG(share_stable) AS share_stable,
       AVG(mean_cosine) AS mean_cosine,
       COUNT(*) AS n_pairs
FROM stability, last
WHERE share_stable IS NOT NULL
  AND ((comparison = 'seeds' AND step = last.s)
       OR (comparison <> 'seeds' AND step_prev >= last.s / 2))
GROUP BY model, comparison, method
ORDER BY model, comparison, method
