-- latest_activations: the activations of each model's last recorded checkpoint.
CREATE VIEW latest_activations AS
SELECT a.*
FROM activations a
JOIN (SELECT model AS m, MAX(step) AS s FROM activations GROUP BY model) l
  ON a.model = l.m AND a.step = l.s
