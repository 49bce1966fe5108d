-- checkpoint_pairs: each recorded checkpoint of each (model, layer) with the one before it
-- (step_prev NULL for the first): the pairs `lineage` compares.
-- A table of its own rather than a CTE of lineage.sql: read from a file, its few rows carry
-- exact statistics, so the planner joins it to the activations as the small side (as a CTE its
-- self-join was estimated at millions of rows and the activations became the hash table's
-- side: lineage took 0.65 s a slice against 0.55 s on the default lake).
-- The recorded checkpoints are read from neuron_stats (one file, a row per recorded neuron)
-- rather than from `neurons` (a file per partition), and paired by LAG() in one pass rather
-- than a self-join that reads them twice: 15 → 2.5 ms on the default lake. (Inside lineage,
-- filtered to a slice, LAG() over the partition columns failed on Ballista 55; over this
-- plain file it does not.)
-- Inputs:  neuron_stats.
-- Output:  model, layer, step, step_prev.
SELECT model, layer, step,
       LAG(step) OVER (PARTITION BY model, layer ORDER BY step) AS step_prev
FROM (SELECT DISTINCT model, layer, step FROM neuron_stats)
