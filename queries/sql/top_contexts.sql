-- top_contexts: for each neuron at each model's last recorded step, its {{top_n}} most strongly
-- activating tokens with the text around them: {{before}} tokens before and {{after}} after,
-- widened to whole words (a word split into several tokens is never cut), within the same
-- document.
-- Inputs:  activations, tokens.
-- Output:  model, step, layer, neuron, rank (1 = strongest), token_index, value, token_text,
--          left_context, right_context.
WITH latest AS (
    SELECT model, MAX(step) AS step FROM activations GROUP BY model
),
ranked AS (
    SELECT a.model, a.step, a.layer, a.neuron, a.token_index, a.value,
           ROW_NUMBER() OVER (PARTITION BY a.model, a.step, a.layer, a.neuron
                              ORDER BY a.value DESC, a.token_index ASC) AS rank
    FROM activations a
    JOIN latest l ON a.model = l.model AND a.step = l.step
),
best AS (
    SELECT r.model, r.step, r.layer, r.neuron, r.token_index, r.value, r.rank,
           t.doc_id, t.position, t.token_text
    FROM ranked r
    JOIN tokens t ON r.token_index = t.token_index
    WHERE r.rank <= {{top_n}}
),
-- The first and last word the token window touches.
words AS (
    SELECT best.model, best.layer, best.neuron, best.rank,
           MIN(c.word_index) AS first_word, MAX(c.word_index) AS last_word
    FROM best
    JOIN tokens c
      ON c.doc_id = best.doc_id
     AND c.position BETWEEN best.position - {{before}} AND best.position + {{after}}
    GROUP BY best.model, best.layer, best.neuron, best.rank
)
SELECT best.model, best.step, best.layer, best.neuron, best.rank, best.token_index, best.value,
       best.token_text,
       COALESCE(STRING_AGG(CASE WHEN c.position < best.position THEN c.token_text END, ''
                           ORDER BY c.position), '') AS left_context,
       COALESCE(STRING_AGG(CASE WHEN c.position > best.position THEN c.token_text END, ''
                           ORDER BY c.position), '') AS right_context
FROM best
JOIN words w
  ON w.model = best.model AND w.layer = best.layer AND w.neuron = best.neuron
 AND w.rank = best.rank
JOIN tokens c
  ON c.doc_id = best.doc_id
 AND c.word_index BETWEEN w.first_word AND w.last_word
GROUP BY best.model, best.step, best.layer, best.neuron, best.rank, best.token_index, best.value,
         best.token_text
