-- stability: how many features survive from one checkpoint to the next (or from one SAE seed to
-- another): the share of the features alive in the earlier one whose one-to-one match has an
-- activation cosine of at least {{stable_cosine}}.
--   method 'index':   a feature is matched with the same index (TopK-LM neurons keep theirs),
--                     from `lineage`;
--   method 'matched': the optimal one-to-one matching (Hungarian algorithm), from `matching`;
--                     the only fair method for SAE latents, whose order is arbitrary.
-- comparison: 'checkpoints' (consecutive checkpoints of `model`) or 'seeds' (`model_prev` is the
-- same checkpoint's SAE trained with another seed).
-- Inputs:  lineage, matching.
-- Output:  model, model_prev, comparison, method, layer, step_prev, step, n_alive, n_stable,
--          share_stable, mean_cosine.
WITH matched AS (
    SELECT model, model AS model_prev, 'checkpoints' AS comparison, 'index' AS method, layer,
           step_prev, step, cosine, n_prev > 0 AS alive_prev
    FROM lineage
    UNION ALL
    SELECT model, model_prev, comparison, 'matched' AS method, layer, step_prev, step,
           cosine, alive_prev
    FROM matching
)
SELECT model, model_prev, comparison, method, layer, step_prev, step,
       SUM(CASE WHEN alive_prev THEN 1 ELSE 0 END) AS n_alive,
       SUM(CASE WHEN alive_prev AND cosine >= {{stable_cosine}} THEN 1 ELSE 0 END) AS n_stable,
       CAST(SUM(CASE WHEN alive_prev AND cosine >= {{stable_cosine}} THEN 1 ELSE 0 END) AS DOUBLE)
           / NULLIF(SUM(CASE WHEN alive_prev THEN 1 ELSE 0 END), 0) AS share_stable,
       AVG(CASE WHEN alive_prev THEN cosine END) AS mean_cosine
FROM matched
GROUP BY model, model_prev, comparison, method, layer, step_prev, step
