"""Batch jobs: the worker that runs a predictor over one shard of a dataset, and the storage it reads and writes.

It runs in the predictor's image (an Indexed Job's pod, one index per shard) and on a laptop
(`mlkit job run`), so like the rest of the runtime it never imports `mlkit`.
"""
