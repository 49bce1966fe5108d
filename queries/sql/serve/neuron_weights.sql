-- neuron_weights: what one neuron's weights say at one checkpoint (recorded by `record`): the
-- tokens its write direction promotes and suppresses through the unembedding, and the norms of
-- its read and write vectors.
-- Inputs:  neurons.
-- Output:  top_promoted, top_suppressed, read_norm, write_norm.
SELECT top_promoted, top_suppressed, read_norm, write_norm
FROM neurons
WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
