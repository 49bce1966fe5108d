-- formation_counts: neurons formed per (model, layer, formation step) (figure 4).
SELECT model, layer, formation_step, COUNT(*) AS n
FROM formation
WHERE formation_step IS NOT NULL
GROUP BY model, layer, formation_step
ORDER BY model, layer, formation_step
