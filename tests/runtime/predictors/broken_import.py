import not_a_module_anyone_has  # noqa: F401


class Predictor:
    def predict(self, payload):
        return payload
