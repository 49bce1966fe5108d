-- neuron_tokens: the tokens one neuron fires on at one checkpoint, by share of its activation
-- weight (|value|), the {{top_n}} largest.
-- Inputs:  activations, tokens.
-- Output:  label (token text), n, share.
WITH w AS (
    SELECT t.token_text AS label, COUNT(*) AS n, SUM(ABS(a.value)) AS w
    FROM activations a JOIN tokens t ON t.token_index = a.token_index
    WHERE a.model = {{model}} AND a.step = {{step}} AND a.layer = {{layer}}
      AND a.neuron = {{neuron}}
    GROUP BY t.token_text
)
SELECT label, n, w / SUM(w) OVER () AS share
FROM w
ORDER BY share DESC, label
LIMIT {{top_n}}
