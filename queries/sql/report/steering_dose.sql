-- steering_dose: mean concept share and perplexity per (model, concept, strength) over the
-- prompts of the steering evaluation at each model's last evaluated checkpoint (figure 7).
WITH last AS (SELECT model AS m, MAX(step) AS s FROM steering GROUP BY model)
SELECT model, concept, strength, AVG(concept_share) AS concept_share, AVG(perplexity) AS perplexity
FROM steering JOIN last ON model = m AND step = s
GROUP BY model, concept, strength
ORDER BY model, concept, strength
