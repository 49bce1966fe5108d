-- layer_summary: per (model, step, layer), what the charts compare across models:
-- median and quartiles of token and semantic entropy (normalised, neurons with enough
-- observations), the share of dead neurons, and the share of neurons stable since the
-- previous checkpoint. Quantiles are exact (PERCENTILE_CONT, linear interpolation): the
-- approximate t-digest gave results that depended on the order rows arrived in, so two runs
-- of the same config differed in the fourth decimal at 512 SAE latents.
-- Inputs:  neuron_stats, token_entropy, semantic_entropy, lineage.
-- Output:  model, step, layer, n_neurons, dead_share, token_entropy_median, token_entropy_q1,
--          token_entropy_q3, semantic_entropy_median, semantic_entropy_q1, semantic_entropy_q3,
--          stable_share.
WITH te AS (
    SELECT model, step, layer,
           PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY entropy_norm) AS med,
           PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY entropy_norm) AS q1,
           PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY entropy_norm) AS q3
    FROM token_entropy WHERE NOT low_count
    GROUP BY model, step, layer
),
se AS (
    SELECT model, step, layer,
           PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY entropy_norm) AS med,
           PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY entropy_norm) AS q1,
           PERCENTILE_CONT(0.75) WITHIN GROUP (ORDER BY entropy_norm) AS q3
    FROM semantic_entropy WHERE NOT low_count
    GROUP BY model, step, layer
),
st AS (
    SELECT model, step, layer, COUNT(*) AS n_neurons,
           AVG(CASE WHEN dead THEN 1.0 ELSE 0.0 END) AS dead_share
    FROM neuron_stats
    GROUP BY model, step, layer
),
li AS (
    SELECT model, step, layer, AVG(CASE WHEN event = 'stable' THEN 1.0 ELSE 0.0 END) AS stable_share
    FROM lineage
    GROUP BY model, step, layer
)
SELECT st.model, st.step, st.layer, st.n_neurons, st.dead_share,
       te.med AS token_entropy_median, te.q1 AS token_entropy_q1, te.q3 AS token_entropy_q3,
       se.med AS semantic_entropy_median, se.q1 AS semantic_entropy_q1, se.q3 AS semantic_entropy_q3,
       li.stable_share
FROM st
LEFT JOIN te ON te.model = st.model AND te.step = st.step AND te.layer = st.layer
LEFT JOIN se ON se.model = st.model AND se.step = st.step AND se.layer = st.layer
LEFT JOIN li ON li.model = st.model AND li.step = st.step AND li.layer = st.layer
