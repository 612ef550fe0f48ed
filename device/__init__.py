"""The on-board runtime: numpy, OpenCV and an inference runtime only, never TensorFlow."""
