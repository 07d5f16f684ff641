import os

# Silence TensorFlow's import-time log lines and keep runs deterministic enough for tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
