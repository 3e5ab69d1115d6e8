"""Recommendation and CTR helpers: MovieLens-100k data, metrics, retrieval."""
