"""Load scenarios: a dynamic batcher and the MLPerf LoadGen driver around it."""
