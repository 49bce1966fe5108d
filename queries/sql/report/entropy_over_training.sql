-- entropy_over_training: median and quartiles of normalised semantic entropy per model and
-- layer across checkpoints (figure 3), and the share of stable neurons (figure 5).
SELECT model, layer, step, semantic_entropy_median, semantic_entropy_q1, semantic_entropy_q3,
       stable_share, dead_share
FROM layer_summary
ORDER BY model, layer, step
