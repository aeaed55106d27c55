"""Talking to a Kubernetes API server: the small interface every cluster-facing command uses."""
