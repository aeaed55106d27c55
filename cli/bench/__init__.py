"""`mlkit bench`: measure an API under the real runtime, find each configuration's capacity at a
latency target, and turn that into settings, replicas, nodes and a monthly cost.

loadgen (open-loop load), server (the runtime as a subprocess), sweep (capacity search),
recommend (the arithmetic), prices (the price table), chart (the SVG).
"""
