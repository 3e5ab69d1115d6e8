"""Model architectures written in this repository (no weights are downloaded)."""
