-- frequency_bins: neurons per decade of activation frequency at each model's last checkpoint
-- (figure 6); bin -9 holds dead neurons.
WITH last AS (SELECT model, MAX(step) AS step FROM neuron_stats GROUP BY model)
SELECT s.model,
       CASE WHEN s.dead THEN -9 ELSE CAST(FLOOR(LOG10(s.frequency)) AS INT) END AS decade,
       COUNT(*) AS n
FROM neuron_stats s JOIN last l ON s.model = l.model AND s.step = l.step
GROUP BY s.model, decade
ORDER BY s.model, decade
