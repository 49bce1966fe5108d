-- formation: the step at which each neuron forms — from then on its semantic entropy stays
-- below {{formation_entropy}} (normalised) with enough observations, and its top concept stays
-- the one it has at the last checkpoint. NULL formation_step: never formed.
-- Each join names its small side first: DataFusion builds its hash table from the left input
-- and, without statistics for a CTE, keeps that order (semantic_entropy on the left built
-- 33,681-row tables four times; with the per-model and per-neuron rows first, 18.2 → 13.7 ms
-- on the default lake, rows identical).
-- Inputs:  semantic_entropy.
-- Output:  model, layer, neuron, concept (top concept at the last step), formation_step,
--          final_entropy_norm.
WITH last AS (
    SELECT model, MAX(step) AS step FROM semantic_entropy GROUP BY model
),
final AS (
    SELECT s.model, s.layer, s.neuron, s.top_concept_id, s.top_concept, s.entropy_norm
    FROM last l
    JOIN semantic_entropy s ON s.model = l.model AND s.step = l.step
),
good AS (
    SELECT s.model, s.layer, s.neuron, s.step, f.top_concept,
           f.entropy_norm AS final_entropy_norm,
           (s.entropy_norm < {{formation_entropy}} AND NOT s.low_count
            AND s.top_concept_id = f.top_concept_id) AS ok
    FROM final f
    JOIN semantic_entropy s ON f.model = s.model AND f.layer = s.layer AND f.neuron = s.neuron
),
last_bad AS (
    SELECT model, layer, neuron, MAX(CASE WHEN ok THEN NULL ELSE step END) AS step
    FROM good
    GROUP BY model, layer, neuron
)
-- Every neuron of the last step has rows in `good` (its own last step among them), so one
-- aggregate gives each its formation step, NULL if it never formed. (A LEFT JOIN of `final`
-- with the formed neurons is the plainer form, but it hangs on Ballista 55.)
SELECT g.model, g.layer, g.neuron, g.top_concept AS concept,
       MIN(CASE WHEN g.ok AND (b.step IS NULL OR g.step > b.step) THEN g.step END)
           AS formation_step,
       g.final_entropy_norm
FROM last_bad b
JOIN good g ON b.model = g.model AND b.layer = g.layer AND b.neuron = g.neuron
GROUP BY g.model, g.layer, g.neuron, g.top_concept, g.final_entropy_norm
