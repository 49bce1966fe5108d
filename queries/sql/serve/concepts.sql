-- concepts: every concept label of the evaluation tokens, for the search box.
-- Output:  concept, n_tokens.
SELECT concept, COUNT(*) AS n_tokens
FROM tokens
WHERE concept IS NOT NULL
GROUP BY concept
ORDER BY concept
