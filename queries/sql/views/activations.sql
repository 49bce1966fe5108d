-- activations: the recorded activations with values as FLOAT, whether the files store f32
-- or f16 (`record.value_type`). Filters on model, step and layer still prune partitions.
CREATE VIEW activations AS
SELECT token_index, neuron, CAST(value AS FLOAT) AS value, dense, model, step, layer
FROM activations_stored
