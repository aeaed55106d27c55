"""Deploying APIs: model upload, image build context and push, and the `mlkit apply` APIs step."""
