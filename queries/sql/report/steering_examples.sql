-- steering_examples: the steered texts at the strongest strength, for the neuron dashboards.
SELECT model, neurons, concept, strength, prompt_id, text
FROM steering
WHERE strength = (SELECT MAX(strength) FROM steering)
ORDER BY model, concept, prompt_id
