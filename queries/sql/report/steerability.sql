-- steerability: how much steering raises the share of concept words at each checkpoint
-- (`steer.checkpoints = "all"`): per (model, concept, step), the largest gain over the
-- unsteered share among the strengths tried, and the strength that gave it. Empty unless more
-- than one checkpoint was evaluated.
WITH share AS (
    SELECT model, concept, step, strength, AVG(concept_share) AS share
    FROM steering
    GROUP BY model, concept, step, strength
),
base AS (
    SELECT model, concept, step, share AS unsteered FROM share WHERE strength = 0
),
gain AS (
    SELECT s.model, s.concept, s.step, s.strength, s.share - b.unsteered AS gain
    FROM share s
    JOIN base b ON b.model = s.model AND b.concept = s.concept AND b.step = s.step
    WHERE s.strength > 0
),
ranked AS (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY model, concept, step
                                 ORDER BY gain DESC, strength) AS rank
    FROM gain
)
SELECT model, concept, step, gain, strength
FROM ranked
WHERE rank = 1 AND (SELECT COUNT(DISTINCT step) FROM steering) > 1
ORDER BY model, concept, step
