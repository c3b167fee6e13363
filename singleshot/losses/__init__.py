"""Training losses. Each returns a dict of named scalar tensors whose sum is the total loss."""
