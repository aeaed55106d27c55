"""One APIRouter per concern: the native route, KServe v1, Open Inference Protocol v2, health and metrics."""
