-- neuron_max: one neuron's largest recorded activation at one checkpoint (the unit of a
-- relative steering strength).
-- Inputs:  activations.
-- Output:  max_value.
SELECT CAST(MAX(value) AS DOUBLE) AS max_value
FROM activations
WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
