-- checkpoint_pairs: each recorded checkpoint of each (model, layer) with the one before it
-- (step_prev NULL for the first): the pairs `lineage` compares.
-- A table of its own rather than a CTE of lineage.sql: read from a file, its few rows carry
-- exact statistics, so the planner joins it to the activations as the small side (as a CTE its
-- self-join was estimated at millions of rows and the activations became the hash table's
-- side: lineage took 0.65 s a slice against 0.55 s on the default lake).
-- The previous step by a self-join rather than LAG(): Ballista 55 fails a window over a
-- partition column a filter made constant ("Expects PARTITION BY expression to be ordered").
-- The recorded checkpoints are read from neuron_stats (one file, a row per recorded neuron)
-- rather than from `neurons` (a file per partition): 15 → 4 ms on the default lake.
-- Inputs:  neuron_stats.
-- Output:  model, layer, step, step_prev.
WITH steps AS (
    SELECT DISTINCT model, layer, step FROM neuron_stats
)
SELECT s.model, s.layer, s.step, MAX(p.step) AS step_prev
FROM steps s
LEFT JOIN steps p ON p.model = s.model AND p.layer = s.layer AND p.step < s.step
GROUP BY s.model, s.layer, s.step
