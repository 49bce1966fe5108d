-- concepts: the concepts that some neuron of the model has as its top concept.
-- Inputs:  semantic_entropy.  Output: top_concept.
SELECT DISTINCT top_concept FROM semantic_entropy WHERE model = '{{model}}' ORDER BY top_concept
