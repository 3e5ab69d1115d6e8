"""`--hosts`: pick benchmark hosts by name or by fingerprint fields.

Comma-separated terms. A bare term names a host (worker name, hostname or address);
several names mean any of them. A `key=value` term filters on the fingerprint, and
every filter must hold: a CPU flag (`avx512_vnni=true`, `amx_int8=false`), `gpu` (a
substring of a GPU name, or `true`/`false` for any/none), `arch`, `cpu` (a substring
of the CPU model), `cores`, `hostname`, `python`, or a library (`onnxruntime-gpu=1.31.1`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workbench.env import CPU_FLAGS, LIBRARIES
from workbench.errors import UserError
from workbench.fleet.inventory import Host

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", "none"}


def _bool(key: str, text: str) -> bool:
    low = text.lower()
    if low in _TRUE | _FALSE:
        return low in _TRUE
    raise UserError(f"--hosts {key}={text}: give true or false")


def _gpu(value: str) -> Callable[[Host], bool]:
    names = lambda h: [str(g.get("name", "")) for g in h.fingerprint.get("gpu", {}).get("gpus", [])]  # noqa: E731
    low = value.lower()
    if low in _TRUE:
        return lambda h: bool(names(h))
    if low in _FALSE:
        return lambda h: not names(h)
    return lambda h: any(low in n.lower() for n in names(h))


def _matcher(key: str, value: str) -> Callable[[Host], bool]:
    """The test one `key=value` term applies to a host."""
    k = key.strip().lower()
    if k in CPU_FLAGS:
        want = _bool(k, value)
        return lambda h: bool(h.fingerprint.get("cpu", {}).get("flags", {}).get(k)) == want
    if k == "gpu":
        return _gpu(value)
    simple: dict[str, Callable[[Host], Any]] = {
        "arch": lambda h: h.arch,
        "hostname": lambda h: h.fingerprint.get("hostname"),
        "name": lambda h: h.name,
        "cores": lambda h: str(h.cores),
        "python": lambda h: h.fingerprint.get("python", {}).get("version"),
    }
    if k in simple:
        get = simple[k]
        return lambda h: str(get(h)) == value
    if k == "cpu":
        return lambda h: value.lower() in str(h.fingerprint.get("cpu", {}).get("model")).lower()
    if k in LIBRARIES:
        return lambda h: str(h.fingerprint.get("libraries", {}).get(k)) == value
    known = sorted([*CPU_FLAGS, "gpu", "cpu", *simple, *LIBRARIES])
    raise UserError(f"--hosts: unknown field {key!r}: use one of {', '.join(known)}")


def select(hosts: list[Host], spec: str | None) -> list[Host]:
    """The hosts `spec` picks (all of them when it is empty); a UserError naming the
    hosts there are when it picks none or names one that is not there."""
    terms = [t.strip() for t in (spec or "").split(",") if t.strip()]
    if not terms:
        return list(hosts)
    names = [t for t in terms if "=" not in t]
    tests = [_matcher(*t.split("=", 1)) for t in terms if "=" in t]
    available = ", ".join(h.name for h in hosts)
    for name in names:
        if not any(name in (h.name, h.address, h.fingerprint.get("hostname")) for h in hosts):
            raise UserError(f"--hosts: no host {name!r} in the cluster: it has {available}")
    chosen = [
        h
        for h in hosts
        if (
            not names or any(n in (h.name, h.address, h.fingerprint.get("hostname")) for n in names)
        )
        and all(test(h) for test in tests)
    ]
    if not chosen:
        raise UserError(f"--hosts {spec!r} picks none of the cluster's hosts: {available}")
    return chosen
