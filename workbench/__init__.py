"""workbench: measure how to ship an ML model (format x precision x runtime x device)."""

__version__ = "0.1.0"
