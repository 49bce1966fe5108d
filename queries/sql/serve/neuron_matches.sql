-- neuron_matches: one neuron's partners in `matching` at one checkpoint: the neuron it was
-- matched to at the previous checkpoint, the one matched to it at the next, and its match in
-- another model (an SAE's second seed, ...), with the cosine of their activations.
-- Inputs:  matching.
-- Output:  comparison, direction (from: its partner comes before it; to: after it),
--          other_model, other_step, other_neuron, cosine, same_index.
SELECT comparison, 'from' AS direction, model_prev AS other_model, step_prev AS other_step,
       neuron_prev AS other_neuron, cosine, same_index
FROM matching
WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
UNION ALL
SELECT comparison, 'to' AS direction, model AS other_model, step AS other_step,
       neuron AS other_neuron, cosine, same_index
FROM matching
WHERE model_prev = {{model}} AND step_prev = {{step}} AND layer = {{layer}}
  AND neuron_prev = {{neuron}}
ORDER BY comparison, direction
