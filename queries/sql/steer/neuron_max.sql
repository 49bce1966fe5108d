-- neuron_max: the largest observed activation of one neuron (for strengths relative to it).
-- Inputs:  neuron_stats.  Output: max_value.
SELECT max_value FROM neuron_stats
WHERE model = '{{model}}' AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
