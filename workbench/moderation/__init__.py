"""Content moderation (guide §10.1): text and image stages on real models, a policy as
data, sequential or concurrent execution, and the served endpoint."""
