-- compare_concepts: how many neurons of one layer have each concept as their top concept
-- (among neurons with enough observations), at A = {{model_a}}@{{step_a}} and
-- B = {{model_b}}@{{step_b}}.
-- Inputs:  semantic_entropy.
-- Output:  concept, n_a, n_b.
SELECT top_concept AS concept,
       SUM(CASE WHEN model = {{model_a}} AND step = {{step_a}} THEN 1 ELSE 0 END) AS n_a,
       SUM(CASE WHEN model = {{model_b}} AND step = {{step_b}} THEN 1 ELSE 0 END) AS n_b
FROM semantic_entropy
WHERE layer = {{layer}} AND NOT low_count
  AND ((model = {{model_a}} AND step = {{step_a}}) OR (model = {{model_b}} AND step = {{step_b}}))
GROUP BY top_concept
ORDER BY n_a + n_b DESC, concept
