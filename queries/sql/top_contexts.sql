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
-- The first and last word the token window touches: word indices rise with position within a
-- document (from 0), so they are the words of the window's end tokens; a window past the
-- document's start or end takes the document from its first or to its last word. (Two point
-- lookups rather than a MIN/MAX over the window: DataFusion would compute `best`, a window
-- over every activation, once for each CTE that reads it.)
bounded AS (
    SELECT best.*,
           COALESCE(lo.word_index, 0) AS first_word,
           COALESCE(hi.word_index, 4294967295) AS last_word
    FROM best
    LEFT JOIN tokens lo
      ON lo.doc_id = best.doc_id AND lo.position = best.position - {{before}}
    LEFT JOIN tokens hi
      ON hi.doc_id = best.doc_id AND hi.position = best.position + {{after}}
)
SELECT best.model, best.step, best.layer, best.neuron, best.rank, best.token_index, best.value,
       best.token_text,
       COALESCE(STRING_AGG(CASE WHEN c.position < best.position THEN c.token_text END, ''
                           ORDER BY c.position), '') AS left_context,
       COALESCE(STRING_AGG(CASE WHEN c.position > best.position THEN c.token_text END, ''
                           ORDER BY c.position), '') AS right_context
FROM bounded best
JOIN tokens c
  ON c.doc_id = best.doc_id
 AND c.word_index BETWEEN best.first_word AND best.last_word
GROUP BY best.model, best.step, best.layer, best.neuron, best.rank, best.token_index, best.value,
         best.token_text
