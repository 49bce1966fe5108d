-- neuron_contexts: one neuron's {{top_n}} strongest activations at one checkpoint, each with
-- the tokens around it ({{before}} before, {{after}} after, widened to whole words, same
-- document) and the neuron's
-- activation on every one of them (0 where it is not among the recorded top-k), so the page
-- can shade each token by strength. Reads only the (model, step, layer) partition.
-- Inputs:  activations, tokens.
-- Output:  rank, top_value, token_index (of the context token), offset (0: the top token;
--          signed, so positions are cast before subtracting),
--          token_text, value.
WITH acts AS (
    SELECT token_index, value
    FROM activations
    WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
),
best AS (
    SELECT token_index, value,
           ROW_NUMBER() OVER (ORDER BY value DESC, token_index) AS rank
    FROM acts
    ORDER BY value DESC, token_index
    LIMIT {{top_n}}
),
centre AS (
    SELECT b.rank, b.value, t.doc_id, t.position
    FROM best b JOIN tokens t ON t.token_index = b.token_index
),
-- The first and last word the token window touches: a word is never cut.
words AS (
    SELECT c.rank, MIN(w.word_index) AS first_word, MAX(w.word_index) AS last_word
    FROM centre c
    JOIN tokens w
      ON w.doc_id = c.doc_id
     AND w.position BETWEEN c.position - {{before}} AND c.position + {{after}}
    GROUP BY c.rank
),
around AS (
    SELECT c.rank, c.value AS top_value, w.token_index,
           CAST(w.position AS BIGINT) - CAST(c.position AS BIGINT) AS offset,
           w.token_text
    FROM centre c
    JOIN words ws ON ws.rank = c.rank
    JOIN tokens w
      ON w.doc_id = c.doc_id
     AND w.word_index BETWEEN ws.first_word AND ws.last_word
)
SELECT w.rank, w.top_value, w.token_index, w.offset, w.token_text,
       COALESCE(a.value, CAST(0 AS FLOAT)) AS value
FROM around w
LEFT JOIN acts a ON a.token_index = w.token_index
ORDER BY w.rank, w.offset
