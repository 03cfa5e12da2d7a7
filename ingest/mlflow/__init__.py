"""The `mlflow` receiver: tracehouse as the tracking server MLflow clients already talk to."""
