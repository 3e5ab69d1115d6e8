"""Image pre- and post-processing shared by the vision tasks (NumPy and Pillow only)."""
