"""Calibration and evaluation readers of a user's model: every source kind, the checks
on each item (names, ranks, fixed dims, dtypes, ragged items) and their one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.errors import UserError
from workbench.signature import TensorSpec
from workbench.usermodel.callref import is_callable_ref, load_callable
from workbench.usermodel.data import (
    LabeledData,
    iter_items,
    load_items,
    load_labeled,
    split_batches,
    validate_item,
)

IMAGE = [TensorSpec("pixel_values", "float32", ("batch", 3, 8, 8))]
TEXT = [
    TensorSpec("input_ids", "int64", ("batch", "sequence")),
    TensorSpec("attention_mask", "int64", ("batch", "sequence")),
]


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, 8, 8)).astype(np.float32)


def text(n: int, length: int) -> dict[str, np.ndarray]:
    ids = np.arange(n * length, dtype=np.int64).reshape(n, length) % 50
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def test_one_npz_file_is_one_item(tmp_path: Path) -> None:
    x = images(5)
    np.savez(tmp_path / "batch.npz", pixel_values=x)
    (item,) = load_items(tmp_path / "batch.npz", IMAGE)
    np.testing.assert_array_equal(item["pixel_values"], x)
    assert item["pixel_values"].dtype == np.float32


def test_shards_in_a_directory_and_a_glob_are_read_in_name_order(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        np.savez(tmp_path / f"cal-{i}.npz", pixel_values=images(i + 1, seed=i))
    by_dir = load_items(tmp_path, IMAGE)
    by_glob = load_items(str(tmp_path / "cal-*.npz"), IMAGE)
    assert [len(i["pixel_values"]) for i in by_dir] == [1, 2, 3]
    for a, b in zip(by_dir, by_glob, strict=True):
        np.testing.assert_array_equal(a["pixel_values"], b["pixel_values"])


def test_a_directory_of_npy_is_one_item_named_by_file_stem(tmp_path: Path) -> None:
    for name, array in text(4, 6).items():
        np.save(tmp_path / f"{name}.npy", array)
    (item,) = load_items(tmp_path, TEXT)
    assert sorted(item) == ["attention_mask", "input_ids"]
    assert item["input_ids"].shape == (4, 6)


def test_module_function_and_file_function_sources(tmp_path: Path) -> None:
    module = tmp_path / "userdata_mod.py"
    module.write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    for n in (2, 3):\n"
        "        yield {'input_ids': np.ones((n, 5), dtype=np.int32),\n"
        "               'attention_mask': np.ones((n, 5), dtype=np.int64)}\n"
        "def one():\n"
        "    return {'input_ids': [[1, 2]], 'attention_mask': [[1, 1]]}\n"
    )
    by_file = load_items(f"{module}:batches", TEXT)
    assert [i["input_ids"].shape for i in by_file] == [(2, 5), (3, 5)]
    assert by_file[0]["input_ids"].dtype == np.int64  # int32 ids cast to the model's int64
    sys.path.insert(0, str(tmp_path))
    try:
        (item,) = load_items("userdata_mod:one", TEXT)
    finally:
        sys.path.remove(str(tmp_path))
    assert item["input_ids"].tolist() == [[1, 2]]


def test_python_sources_dict_list_and_callable() -> None:
    assert len(load_items(text(2, 3), TEXT)) == 1
    assert len(load_items([text(2, 3), text(1, 4)], TEXT)) == 2
    assert len(load_items(lambda: iter([text(2, 3)] * 3), TEXT)) == 3


def test_limit_counts_rows_and_cuts_the_last_item() -> None:
    items = load_items([text(4, 3), text(4, 3), text(4, 3)], TEXT, limit=6)
    assert [len(i["input_ids"]) for i in items] == [4, 2]


def test_limit_reads_a_generator_only_as_far_as_needed() -> None:
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield text(2, 3)

    assert len(list(iter_items(endless, TEXT, limit=4))) == 2
    assert len(produced) <= 3


def test_a_fixed_batch_axis_is_never_cut_short() -> None:
    specs = [TensorSpec("x", "float32", (2, 4))]
    item = {"x": np.zeros((2, 4), np.float32)}
    assert len(load_items([item, item], specs, limit=3)) == 1


def test_float64_data_is_cast_to_a_float32_input() -> None:
    (item,) = load_items({"pixel_values": images(2).astype(np.float64)}, IMAGE)
    assert item["pixel_values"].dtype == np.float32


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"pixel_values": np.zeros((3, 8, 8), np.float32)},
            "calibration item 0: input 'pixel_values' has rank 3, the model expects 4 "
            "(batch, 3, 8, 8) (add the batch axis: x[None])",
        ),
        (
            {"pixel_values": np.zeros((1, 1, 8, 8), np.float32)},
            "axis 1 must be 3",
        ),
        ({"pixels": images(1)}, "missing input 'pixel_values'; unknown key 'pixels'"),
        (
            {"pixel_values": np.zeros((1, 3, 8, 8), np.int64)},
            "has dtype int64, the model expects float32 (raw integer pixels?",
        ),
        ({"pixel_values": np.zeros((0, 3, 8, 8), np.float32)}, "has no rows"),
    ],
)
def test_bad_image_items_are_named(item: dict, message: str) -> None:
    with pytest.raises(UserError, match="calibration item 0") as err:
        load_items([item], IMAGE)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_bad_item_is_named_by_its_index() -> None:
    items = [text(2, 3), text(2, 3), text(2, 3), {"input_ids": [[1]], "attention_mask": [1]}]
    with pytest.raises(UserError, match=r"^calibration item 3: input 'attention_mask' has rank 1"):
        load_items(items, TEXT)


def test_ragged_items_are_detected() -> None:
    batch = {"input_ids": np.ones((2, 3), np.int64), "attention_mask": np.ones((3, 3), np.int64)}
    with pytest.raises(UserError, match="item 0 is ragged: input 'attention_mask' has 3 rows"):
        load_items([batch], TEXT)
    seq = {"input_ids": np.ones((2, 3), np.int64), "attention_mask": np.ones((2, 4), np.int64)}
    with pytest.raises(UserError, match="sequence=4 .* but 'input_ids' has sequence=3"):
        load_items([seq], TEXT)
    nested = {"input_ids": [[1, 2], [3]], "attention_mask": [[1, 1], [1]]}
    with pytest.raises(UserError, match="input 'input_ids' is ragged"):
        load_items([text(1, 2), nested], TEXT, what="evaluation")


def test_ragged_object_array_in_an_npz_is_refused(tmp_path: Path) -> None:
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1, 2], [3]
    np.savez(tmp_path / "bad.npz", input_ids=ragged, attention_mask=ragged)
    with pytest.raises(UserError, match="bad.npz: an array holds Python objects"):
        load_items(tmp_path / "bad.npz", TEXT)


def test_ids_that_do_not_fit_the_dtype_and_float_ids_are_refused() -> None:
    specs = [TensorSpec("ids", "int8", ("batch", 4))]
    with pytest.raises(UserError, match="some values do not fit in int8"):
        validate_item({"ids": np.full((1, 4), 300)}, specs)
    with pytest.raises(UserError, match="token ids and indices are integers"):
        validate_item({"ids": np.zeros((1, 4))}, specs)
    with pytest.raises(UserError, match="not a numeric type"):
        validate_item({"ids": np.array([["a"] * 4])}, specs)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("nowhere/data.npz", "no file or directory nowhere/data.npz"),
        ("nowhere/*.npz", "no .npz file matches"),
        ("no_such_module_xyz:batches", "no module named 'no_such_module_xyz'"),
        ("json:no_such_function", "json has no attribute 'no_such_function'"),
        ("json:__doc__", "is a str, not a function"),
    ],
)
def test_bad_sources(source: str, message: str) -> None:
    with pytest.raises(UserError, match="calibration") as err:
        load_items(source, IMAGE)
    assert message in str(err.value)


def test_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .npz or .npy"):
        load_items(tmp_path / "empty", IMAGE)
    np.save(tmp_path / "x.npy", images(1))
    with pytest.raises(UserError, match="single .npy file: put one .npy per input"):
        load_items(tmp_path / "x.npy", IMAGE)
    np.savez(tmp_path / "y.npz", pixel_values=images(1))
    with pytest.raises(UserError, match="both .npz shards and .npy files"):
        load_items(tmp_path, IMAGE)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="broken.npz is not a readable .npz"):
        load_items(tmp_path / "broken.npz", IMAGE)
    (tmp_path / "data.csv").write_text("1,2")
    with pytest.raises(UserError, match="is not a .npz file"):
        load_items(tmp_path / "data.csv", IMAGE)
    with pytest.raises(UserError, match="holds no items"):
        load_items([], IMAGE)
    with pytest.raises(UserError, match="positive number of rows"):
        load_items(tmp_path / "y.npz", IMAGE, limit=0)


def test_user_functions_that_fail_or_return_the_wrong_thing(tmp_path: Path) -> None:
    def boom():
        raise RuntimeError("disk on fire")

    def late():
        yield {"pixel_values": images(1)}
        raise KeyError("shard 7")

    with pytest.raises(UserError, match="function boom raised RuntimeError: disk on fire"):
        load_items(boom, IMAGE)
    with pytest.raises(UserError, match="raised KeyError while producing item 1"):
        load_items(late, IMAGE)
    with pytest.raises(UserError, match="returned a int: it must return a dict"):
        load_items(lambda: 3, IMAGE)
    with pytest.raises(UserError, match="item 0 is a list, not a dict"):
        load_items(lambda: iter([[1, 2]]), IMAGE)
    bad = tmp_path / "bad_import.py"
    bad.write_text("raise ImportError('needs cv2')\n")
    with pytest.raises(UserError, match="importing .*bad_import.py raised ImportError: needs cv2"):
        load_items(f"{bad}:f", IMAGE)
    with pytest.raises(UserError, match="no file"):
        load_callable(f"{tmp_path}/missing.py:f", "metric")
    with pytest.raises(UserError, match="is not MODULE:FUNCTION"):
        load_callable("nothing", "metric")


def test_is_callable_ref() -> None:
    assert is_callable_ref("pkg.mod:fn")
    assert is_callable_ref("path/to/file.py:fn")
    assert not is_callable_ref("data/*.npz")
    assert not is_callable_ref("C:data")
    assert not is_callable_ref("pkg.mod:")


def test_labels_inline_in_shards_and_in_a_separate_file(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", pixel_values=images(2), labels=np.array([0, 1]))
    np.savez(tmp_path / "b.npz", pixel_values=images(3), labels=np.array([2, 3, 4]))
    data = load_labeled(tmp_path, IMAGE)
    assert isinstance(data, LabeledData)
    assert data.labels.tolist() == [0, 1, 2, 3, 4] and data.rows == 5
    (tmp_path / "sep").mkdir()
    np.savez(tmp_path / "sep" / "x.npz", pixel_values=images(3))
    np.save(tmp_path / "y.npy", np.array([7, 8, 9]))
    np.savez(tmp_path / "y.npz", target=np.array([7, 8, 9]))
    assert load_labeled(tmp_path / "sep", IMAGE, labels=tmp_path / "y.npy").labels.tolist() == [
        7,
        8,
        9,
    ]
    by_key = load_labeled(tmp_path / "sep", IMAGE, label_key="target", labels=tmp_path / "y.npz")
    assert by_key.labels.tolist() == [7, 8, 9]
    limited = load_labeled(tmp_path / "sep", IMAGE, labels=tmp_path / "y.npy", limit=2)
    assert limited.labels.tolist() == [7, 8] and limited.rows == 2


def test_labels_in_a_npy_directory_and_from_a_function(tmp_path: Path) -> None:
    for name, array in text(3, 4).items():
        np.save(tmp_path / f"{name}.npy", array)
    np.save(tmp_path / "labels.npy", np.array([1, 0, 1]))
    assert load_labeled(tmp_path, TEXT).labels.tolist() == [1, 0, 1]
    gen = lambda: iter([{**text(2, 4), "y": np.array([3, 4])}])  # noqa: E731
    assert load_labeled(gen, TEXT, label_key="y").labels.tolist() == [3, 4]


def test_label_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", pixel_values=images(2), labels=np.array([0, 1]))
    np.savez(tmp_path / "b.npz", pixel_values=images(2))
    with pytest.raises(UserError, match="evaluation item 1 .*has no 'labels' labels"):
        load_labeled(tmp_path, IMAGE)
    with pytest.raises(UserError, match="labels 'labels' have 3 rows but the inputs have 2"):
        load_labeled({"pixel_values": images(2), "labels": np.arange(3)}, IMAGE)
    with pytest.raises(UserError, match="is a scalar"):
        load_labeled({"pixel_values": images(2), "labels": 1}, IMAGE)
    np.save(tmp_path / "few.npy", np.arange(3))
    with pytest.raises(UserError, match="item 0 .*labels and a labels file is given too"):
        load_labeled(str(tmp_path / "*.npz"), IMAGE, labels=tmp_path / "few.npy")
    with pytest.raises(UserError, match="labels have 3 rows but the inputs have 4"):
        load_labeled([{"pixel_values": images(4)}], IMAGE, labels=tmp_path / "few.npy")
    with pytest.raises(UserError, match="has no key 'labels'"):
        load_labeled(tmp_path / "b.npz", IMAGE, labels=tmp_path / "b.npz")
    with pytest.raises(UserError, match="no file"):
        load_labeled(tmp_path / "b.npz", IMAGE, labels=tmp_path / "nope.npy")
    (tmp_path / "l.txt").write_text("1\n2\n")
    with pytest.raises(UserError, match="must be a .npy file or a .npz"):
        load_labeled(tmp_path / "b.npz", IMAGE, labels=tmp_path / "l.txt")


def test_split_batches_rebatches_rows_in_order() -> None:
    items = [text(3, 4), text(4, 4)]
    batches = split_batches(items, 2)
    assert [len(b["input_ids"]) for b in batches] == [2, 2, 2, 1]
    joined = np.concatenate([b["input_ids"] for b in batches])
    np.testing.assert_array_equal(joined, np.concatenate([i["input_ids"] for i in items]))
    data = LabeledData(items, np.arange(7))
    pairs = data.batches(3)
    assert [p[1].tolist() for p in pairs] == [[0, 1, 2], [3, 4, 5], [6]]
    assert split_batches([], 4) == []
    with pytest.raises(UserError, match="item 1: input 'input_ids' has shape"):
        split_batches([text(2, 4), text(2, 5)], 2)
    with pytest.raises(UserError, match="positive integer"):
        split_batches(items, 0)
