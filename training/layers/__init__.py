"""Building blocks of the model: patch/label embeddings, input adapters, decoder stages."""
