-- neuron_layers: the same neuron index in every layer of the model at one checkpoint (in the
-- residual stream an index names the same direction at every TopK layer).
-- Inputs:  neuron_stats, semantic_entropy.
-- Output:  layer, frequency, dead, top_concept, top_share, semantic_entropy.
SELECT n.layer, n.frequency, n.dead, s.top_concept, s.top_share,
       s.entropy_norm AS semantic_entropy
FROM neuron_stats n
LEFT JOIN semantic_entropy s
  ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
WHERE n.model = {{model}} AND n.step = {{step}} AND n.neuron = {{neuron}}
ORDER BY n.layer
