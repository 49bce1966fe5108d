-- steering_examples: the steered texts at the strongest strength and each model's last
-- evaluated checkpoint, for the neuron dashboards.
WITH last AS (SELECT model AS m, MAX(step) AS s FROM steering GROUP BY model)
SELECT model, neurons, concept, strength, prompt_id, text
FROM steering JOIN last ON model = m AND step = s
WHERE strength = (SELECT MAX(strength) FROM steering)
ORDER BY model, concept, prompt_id
