-- neuron_histogram: one neuron's recorded activation values at one checkpoint in {{bins}} bins
-- of equal width from its smallest to its largest value.
-- Inputs:  activations.
-- Output:  bin (0-based), lo, hi, n.
WITH acts AS (
    SELECT CAST(value AS DOUBLE) AS v
    FROM activations
    WHERE model = {{model}} AND step = {{step}} AND layer = {{layer}} AND neuron = {{neuron}}
),
range AS (
    SELECT MIN(v) AS lo, MAX(v) AS hi FROM acts
),
binned AS (
    SELECT LEAST(CAST(FLOOR((a.v - r.lo) / NULLIF(r.hi - r.lo, 0) * {{bins}}) AS BIGINT),
                 {{bins}} - 1) AS bin
    FROM acts a CROSS JOIN range r
)
SELECT COALESCE(b.bin, 0) AS bin,
       r.lo + COALESCE(b.bin, 0) * (r.hi - r.lo) / {{bins}} AS lo,
       r.lo + (COALESCE(b.bin, 0) + 1) * (r.hi - r.lo) / {{bins}} AS hi,
       COUNT(*) AS n
FROM binned b CROSS JOIN range r
GROUP BY b.bin, r.lo, r.hi
ORDER BY bin
