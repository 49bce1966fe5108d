-- bootstrap_cells: the data of the bootstrap over documents (`queries/src/bootstrap.rs`) for
-- one slice ({{model}}, {{step}}, {{layer}}; a single partition of `activations`): each
-- neuron's activation weight ({{weight}}) and count per category ({{category}}: the token id,
-- or the concept) and evaluation document. One slice at a time keeps the sort small.
-- Inputs:  activations, tokens.
-- Output:  neuron, category, doc_id, w, n, ordered by neuron, category, doc_id.
SELECT a.neuron, {{category}} AS category, t.doc_id,
       CAST(SUM({{weight}}) AS DOUBLE) AS w, COUNT(*) AS n
FROM activations a
JOIN tokens t ON a.token_index = t.token_index
WHERE a.model = {{model}} AND a.step = {{step}} AND a.layer = {{layer}} AND {{filter}}
GROUP BY a.neuron, {{category}}, t.doc_id
ORDER BY a.neuron, category, t.doc_id
