-- layer_activations: every recorded (token, feature, value) of one model, step and layer, by
-- token: the input of the activation-similarity matrix behind the optimal matching.
-- Inputs:  activations.
-- Output:  token_index, neuron, value.
SELECT token_index, neuron, value
FROM activations
WHERE model = '{{model}}' AND step = {{step}} AND layer = {{layer}}
ORDER BY token_index
