"""Text tasks (guide §5.1, §5.2): data, tokenization, BIO span decoding and metrics."""
