import sys

sys.exit(0)  # a careless script left at the top


class Predictor:
    def predict(self, payload):
        return payload
