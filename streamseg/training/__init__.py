"""Training segmentation models on labeled folders, and shipping them as ready-to-run ONNX."""
