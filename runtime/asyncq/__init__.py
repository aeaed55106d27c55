"""Async APIs: a front that queues requests and reads results by id, and workers that run the predictor
from the queue. The queue and the result store sit behind two small interfaces (backend.py) with an
embedded implementation (local.py), SQS + S3 (aws.py) and Pub/Sub + GCS (gcp.py); a cloud SDK is
imported only by the implementation in use.

Delivery is at least once: a worker writes the result under the request's id before it deletes the
message, so a redelivered request overwrites its own result and never makes a second one.
"""
