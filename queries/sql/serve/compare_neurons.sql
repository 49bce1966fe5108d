-- compare_neurons: one layer at two checkpoints (A = {{model_a}} at {{step_a}}, B = {{model_b}}
-- at {{step_b}}), neuron by neuron index: born (dead in A, alive in B), died, changed (its top
-- concept differs), same, dead (dead in both). Index identity holds within one model; between
-- two models compare the concept counts instead (compare_concepts.sql).
-- Inputs:  neuron_stats, semantic_entropy.
-- Output:  neuron, change, concept_a, concept_b, frequency_a, frequency_b, entropy_a, entropy_b.
WITH a AS (
    SELECT n.neuron, n.dead, n.frequency, s.top_concept, s.entropy_norm
    FROM neuron_stats n
    LEFT JOIN semantic_entropy s
      ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
    WHERE n.model = {{model_a}} AND n.step = {{step_a}} AND n.layer = {{layer}}
),
b AS (
    SELECT n.neuron, n.dead, n.frequency, s.top_concept, s.entropy_norm
    FROM neuron_stats n
    LEFT JOIN semantic_entropy s
      ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
    WHERE n.model = {{model_b}} AND n.step = {{step_b}} AND n.layer = {{layer}}
)
SELECT a.neuron,
       CASE WHEN a.dead AND b.dead THEN 'dead'
            WHEN a.dead THEN 'born'
            WHEN b.dead THEN 'died'
            WHEN a.top_concept IS DISTINCT FROM b.top_concept THEN 'changed'
            ELSE 'same' END AS change,
       a.top_concept AS concept_a, b.top_concept AS concept_b,
       a.frequency AS frequency_a, b.frequency AS frequency_b,
       a.entropy_norm AS entropy_a, b.entropy_norm AS entropy_b
FROM a JOIN b ON a.neuron = b.neuron
ORDER BY CASE WHEN a.dead AND b.dead THEN 4 WHEN a.dead THEN 0 WHEN b.dead THEN 1
              WHEN a.top_concept IS DISTINCT FROM b.top_concept THEN 2 ELSE 3 END,
         a.neuron
