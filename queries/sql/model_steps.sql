-- model_steps: every recorded (model, step), in order: the checkpoints whose features are
-- compared pairwise.
-- Inputs:  neurons.
-- Output:  model, step.
SELECT DISTINCT model, step FROM neurons ORDER BY model, step
