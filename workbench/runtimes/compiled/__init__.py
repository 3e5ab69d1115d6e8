"""Compiled callers and a compiled KServe v2 server over ONNX Runtime's C API and libtorch.

The C++ sources live in `src/`; `build` compiles them on first use (or at set-up) into a
cache keyed by the sources' digest, `headers` fetches the headers they need from Debian
packages (sha256-pinned), and `process` speaks the line protocol of a running caller.
"""
