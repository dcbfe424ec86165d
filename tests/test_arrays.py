"""Plain-array .npy/.npz reading: never unpickled, one message naming the file and the problem."""

import numpy as np
import pytest

from recon4d.errors import InputError
from recon4d.io.arrays import load_npy, load_npz


def test_plain_arrays_load(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.savez(tmp_path / "b.npz", x=np.ones(3), names=np.array(["a", "b"]))
    np.testing.assert_array_equal(load_npy(tmp_path / "a.npy"), np.arange(6.0).reshape(2, 3))
    arrays = load_npz(tmp_path / "b.npz")
    assert sorted(arrays) == ["names", "x"] and arrays["names"].tolist() == ["a", "b"]


def test_pickled_arrays_are_refused_without_advice_to_unpickle(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "obj.npz", x=np.array([None, 1], dtype=object))
    for path, loader in ((tmp_path / "obj.npy", load_npy), (tmp_path / "obj.npz", load_npz)):
        with pytest.raises(InputError) as info:
            loader(path)
        message = str(info.value)
        assert message.startswith(f"{path}: it holds Python objects (pickles)")
        assert "unsafe" not in message and "allow_pickle" not in message


@pytest.mark.parametrize("name,loader,reason", [
    ("text.npy", load_npy, "no .npy header"),
    ("text.npz", load_npz, "not a zip archive"),
    ("missing.npy", load_npy, "no such file or directory"),
])
def test_unreadable_files_name_the_problem(tmp_path, name, loader, reason):
    path = tmp_path / name
    if not name.startswith("missing"):
        path.write_text("not an array\n")
    with pytest.raises(InputError, match=reason) as info:
        loader(path)
    assert str(info.value).startswith(f"{path}: not a readable") and "Errno" not in str(info.value)
