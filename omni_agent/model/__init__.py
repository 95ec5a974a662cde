"""Command understanding: the result type, the vocabulary and the models that fill it."""
