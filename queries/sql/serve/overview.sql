-- overview: what the run holds, from the recorded `neurons` table (present once `record` ran,
-- whether or not `analyze` did): every model, checkpoint and layer with its neuron count.
-- Output:  model, step, layer, n_neurons.
SELECT model, step, layer, COUNT(*) AS n_neurons
FROM neurons
GROUP BY model, step, layer
ORDER BY model, step, layer
