-- pair_similarity: cosine similarity between every neuron of checkpoint {{step_a}} and every
-- neuron of checkpoint {{step_b}} of model '{{model}}', per layer, over the same evaluation
-- tokens. Input of the optimal one-to-one matching (Hungarian algorithm).
-- Inputs:  activations.
-- Output:  layer, neuron_a, neuron_b, cosine.
WITH a AS (
    SELECT layer, neuron, token_index, value FROM activations WHERE model = '{{model}}' AND step = {{step_a}}
),
b AS (
    SELECT layer, neuron, token_index, value FROM activations WHERE model = '{{model}}' AND step = {{step_b}}
),
na AS (SELECT layer, neuron, SQRT(SUM(value * value)) AS norm FROM a GROUP BY layer, neuron),
nb AS (SELECT layer, neuron, SQRT(SUM(value * value)) AS norm FROM b GROUP BY layer, neuron),
dots AS (
    SELECT a.layer, a.neuron AS neuron_a, b.neuron AS neuron_b, SUM(a.value * b.value) AS dot
    FROM a JOIN b ON a.layer = b.layer AND a.token_index = b.token_index
    GROUP BY a.layer, a.neuron, b.neuron
)
SELECT d.layer, d.neuron_a, d.neuron_b, d.dot / NULLIF(na.norm * nb.norm, 0) AS cosine
FROM dots d
JOIN na ON na.layer = d.layer AND na.neuron = d.neuron_a
JOIN nb ON nb.layer = d.layer AND nb.neuron = d.neuron_b
