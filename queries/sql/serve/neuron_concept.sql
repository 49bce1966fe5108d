-- neuron_concept: one neuron's top concept at one checkpoint.
-- Inputs:  semantic_entropy.
-- Output:  top_concept.
SELECT top_concept
FROM semantic_entropy
WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
