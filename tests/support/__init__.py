"""Helpers shared between test files (and reused by scripts/ and benchmarks/): model
builders, a child-interpreter runner, the CLI runner, the browser driver, and test-only
plugins with the fixture machinery that unloads them. Test files import from here, never
from one another."""
