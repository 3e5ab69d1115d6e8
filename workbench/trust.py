"""Loading files from users without running code from them.

Pickle runs code while it reads: a model file that holds pickled Python objects can do
anything the workbench can. The workbench reads no user file with pickle or joblib;
numpy files are read with allow_pickle=False, torch.save checkpoints are refused by
format detection, and a .pt2 ExportedProgram -- whose loader unpickles its sample
inputs, and falls back to full pickle when the safe reader fails -- is loaded with
every torch.load forced to weights_only=True, after refusing archives that hold
pickled Python objects among their constants. TorchScript archives are read by
TorchScript's own unpickler, which builds only TorchScript types.
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from workbench.errors import UserError

# ExportedProgram constants that torch.export.load reads with pickle.loads or the
# torchbind pickler (torch.export.pt2_archive.constants).
_PICKLED_CONSTANT_PREFIXES = ("custom_obj_", "opaque_obj_")
_FORCE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


def refuse_pickled_objects(path: Path) -> None:
    """A UserError when the .pt2 archive at `path` holds pickled Python objects (custom
    or opaque constants), which loading would unpickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on a bad archive
        raise UserError(
            f"cannot load {path} as pt2: not a readable zip archive ({exc}); check the file "
            "is a complete pt2 model"
        ) from None
    pickled = [
        name
        for name in names
        if "/constants/" in f"/{name}"
        and name.rsplit("/", 1)[-1].startswith(_PICKLED_CONSTANT_PREFIXES)
    ]
    if pickled:
        raise UserError(
            f"{str(path)!r} holds pickled Python objects ({', '.join(pickled[:3])}); loading "
            "them would run code from the file, so it is refused: re-export the model "
            "without custom objects"
        )


@contextlib.contextmanager
def weights_only_torch_loads() -> Iterator[None]:
    """Every torch.load inside the block reads tensors only (weights_only=True), even
    where the caller (torch.export.load) asks for full pickle."""
    previous = os.environ.get(_FORCE_ENV)
    os.environ[_FORCE_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_FORCE_ENV, None)
        else:
            os.environ[_FORCE_ENV] = previous
