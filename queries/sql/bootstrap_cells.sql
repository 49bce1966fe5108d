-- bootstrap_cells: the data of the bootstrap over documents (`queries/src/bootstrap.rs`): at
-- each model's last checkpoint, each neuron's activation weight ({{weight}}) and count per
-- category ({{category}}: the token id, or the concept) and evaluation document.
-- Inputs:  activations, tokens.
-- Output:  model, step, layer, neuron, category, doc_id, w, n, ordered by model, step, layer,
--          neuron, category.
WITH last AS (
    SELECT model AS m, MAX(step) AS s FROM activations GROUP BY model
)
SELECT a.model, a.step, a.layer, a.neuron, {{category}} AS category, t.doc_id,
       CAST(SUM({{weight}}) AS DOUBLE) AS w, COUNT(*) AS n
FROM activations a
JOIN last ON a.model = last.m AND a.step = last.s
JOIN tokens t ON a.token_index = t.token_index
WHERE {{filter}}
GROUP BY a.model, a.step, a.layer, a.neuron, {{category}}, t.doc_id
ORDER BY a.model, a.step, a.layer, a.neuron, category, t.doc_id
