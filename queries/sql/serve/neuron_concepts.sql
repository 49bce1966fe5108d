-- neuron_concepts: the concepts of the words one neuron fires on at one checkpoint, by share
-- of its activation weight (|value|); words without a concept count as "none".
-- Inputs:  activations, tokens.
-- Output:  label (concept), n, share.
WITH w AS (
    SELECT COALESCE(t.concept, 'none') AS label, COUNT(*) AS n, SUM(ABS(a.value)) AS w
    FROM activations a JOIN tokens t ON t.token_index = a.token_index
    WHERE a.model = {{model}} AND a.step = {{step}} AND a.layer = {{layer}}
      AND a.neuron = {{neuron}}
    GROUP BY COALESCE(t.concept, 'none')
)
SELECT label, n, w / SUM(w) OVER () AS share
FROM w
ORDER BY share DESC, label
LIMIT {{top_n}}
