"""Load scenarios: the MLPerf LoadGen driver around the dynamic batcher (`workbench.batching`)."""
