-- neuron_over_steps: one neuron at every checkpoint of its model: how often and how strongly it
-- fires, its token and semantic entropy, its top concept, and its lineage from the previous
-- checkpoint (cosine of its activations over the same tokens; event birth/death/stable/drift).
-- Inputs:  neuron_stats, token_entropy, semantic_entropy, lineage.
-- Output:  step, n_active, frequency, mean_value, max_value, dead, token_entropy,
--          semantic_entropy, top_concept, top_share, low_count, cosine, jaccard, event.
SELECT n.step, n.n_active, n.frequency, n.mean_value, n.max_value, n.dead,
       t.entropy_norm AS token_entropy, s.entropy_norm AS semantic_entropy,
       s.top_concept, s.top_share, s.low_count, l.cosine, l.jaccard, l.event
FROM neuron_stats n
LEFT JOIN token_entropy t
  ON t.model = n.model AND t.step = n.step AND t.layer = n.layer AND t.neuron = n.neuron
LEFT JOIN semantic_entropy s
  ON s.model = n.model AND s.step = n.step AND s.layer = n.layer AND s.neuron = n.neuron
LEFT JOIN lineage l
  ON l.model = n.model AND l.step = n.step AND l.layer = n.layer AND l.neuron = n.neuron
WHERE n.model = {{model}} AND n.layer = {{layer}} AND n.neuron = {{neuron}}
ORDER BY n.step
