-- search_word: neurons of one model and checkpoint that fire most on a word: the evaluation
-- tokens whose text (trimmed) or word is {{word}}, case-insensitive. score = the neuron's mean
-- activation over all occurrences (0 where it is not active: a neuron that fires on every
-- occurrence ranks above one that fires hard on a few), as a share of the neuron's largest
-- activation at that step, so neurons of different scales (TopK, dense, SAE) compare.
-- Inputs:  tokens, activations, semantic_entropy, token_entropy, neuron_stats.
-- Output:  model, step, layer, neuron, top_concept, top_share, semantic_entropy, token_entropy,
--          frequency, max_value, n_obs, score, hits (occurrences where it is active),
--          occurrences.
WITH hits AS (
    SELECT token_index
    FROM tokens
    WHERE LOWER(TRIM(token_text)) = {{word}} OR LOWER(word) = {{word}}
),
occurrences AS (
    SELECT CAST(COUNT(*) AS DOUBLE) AS n FROM hits
),
on_word AS (
    SELECT a.model, a.step, a.layer, a.neuron, SUM(a.value) AS mass, COUNT(*) AS hits
    FROM activations a
    WHERE a.model = {{model}} AND a.step = {{step}}
      AND ({{layer}} IS NULL OR a.layer = {{layer}})
      AND a.token_index IN (SELECT token_index FROM hits)
    GROUP BY a.model, a.step, a.layer, a.neuron
)
SELECT w.model, w.step, w.layer, w.neuron, s.top_concept, s.top_share,
       s.entropy_norm AS semantic_entropy, t.entropy_norm AS token_entropy,
       n.frequency, n.max_value, s.n_obs,
       w.mass / (SELECT n FROM occurrences) / NULLIF(n.max_value, 0) AS score, w.hits,
       CAST((SELECT n FROM occurrences) AS BIGINT) AS occurrences
FROM on_word w
LEFT JOIN semantic_entropy s
  ON s.model = w.model AND s.step = w.step AND s.layer = w.layer AND s.neuron = w.neuron
LEFT JOIN token_entropy t
  ON t.model = w.model AND t.step = w.step AND t.layer = w.layer AND t.neuron = w.neuron
LEFT JOIN neuron_stats n
  ON n.model = w.model AND n.step = w.step AND n.layer = w.layer AND n.neuron = w.neuron
WHERE COALESCE(s.entropy_norm, 0) BETWEEN {{min_entropy}} AND {{max_entropy}}
  AND COALESCE(n.frequency, 0) BETWEEN {{min_frequency}} AND {{max_frequency}}
ORDER BY score DESC, w.layer, w.neuron
LIMIT {{limit}}
