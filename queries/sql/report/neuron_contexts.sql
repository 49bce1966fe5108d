-- neuron_contexts: every neuron's top-activating contexts, best first (neuron pages).
-- Inputs:  top_contexts.
-- Output:  model, layer, neuron, rank, value, token_text, left_context, right_context.
SELECT model, layer, neuron, rank, value, token_text, left_context, right_context
FROM top_contexts
ORDER BY model, layer, neuron, rank
