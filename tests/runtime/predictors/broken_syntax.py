class Predictor:
    def predict(self, payload)
        return payload
