-- neuron_matches: one neuron's partners in `matching` at one checkpoint: the neuron it was
-- matched to at the previous checkpoint, the one matched to it at the next, and its match in
-- another model (an SAE's second seed, ...), with the cosine of their activations.
-- One scan with CASE rather than a UNION ALL of two (Ballista 55 does not finish such a union
-- when one side is empty).
-- Inputs:  matching.
-- Output:  comparison, direction (from: its partner comes before it; to: after it),
--          other_model, other_step, other_neuron, cosine, same_index.
WITH m AS (
    SELECT *,
           model = {{model}} AND step = {{step}} AND neuron = {{neuron}} AS is_later
    FROM matching
    WHERE layer = {{layer}}
      AND ((model = {{model}} AND step = {{step}} AND neuron = {{neuron}})
        OR (model_prev = {{model}} AND step_prev = {{step}} AND neuron_prev = {{neuron}}))
)
SELECT comparison,
       CASE WHEN is_later THEN 'from' ELSE 'to' END AS direction,
       CASE WHEN is_later THEN model_prev ELSE model END AS other_model,
       CASE WHEN is_later THEN step_prev ELSE step END AS other_step,
       CASE WHEN is_later THEN neuron_prev ELSE neuron END AS other_neuron,
       cosine, same_index
FROM m
ORDER BY comparison, direction
