"""A user's own model (PyTorch factory, Keras file, Hugging Face directory, ONNX file)
taken through export, quantization, parity, benchmark and serving without a Task class."""
