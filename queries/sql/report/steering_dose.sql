-- steering_dose: mean concept share and perplexity per (model, concept, strength) over the
-- prompts of the steering evaluation (figure 7).
SELECT model, concept, strength, AVG(concept_share) AS concept_share, AVG(perplexity) AS perplexity
FROM steering
GROUP BY model, concept, strength
ORDER BY model, concept, strength
