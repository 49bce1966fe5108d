-- neuron_entropy_over_steps: each neuron's normalised semantic entropy at every checkpoint
-- (neuron pages).
-- Inputs:  semantic_entropy.
-- Output:  model, layer, neuron, step, entropy_norm.
SELECT model, layer, neuron, step, entropy_norm FROM semantic_entropy ORDER BY step
