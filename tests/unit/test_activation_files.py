"""Activations read from a user's file (.npz, .npy, .h5/.hdf5, .safetensors): round trips, each refusal as
one DatasetFileError line naming the file and the array, damage refused (never read as other numbers
where the format has checksums), and the file's fingerprint."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from collapse_tui.data.activations import ACTIVATION_SUFFIXES, open_activations, write_activations
from collapse_tui.data.base import DatasetFileError

RNG = np.random.default_rng(3)
ACTS = RNG.normal(size=(9, 4)).astype(np.float32)
FACTORS = RNG.integers(0, 5, size=(9, 3))
NAMES = ["shape", "scale", "hue"]
WITH_FACTORS = (".npz", ".h5", ".hdf5", ".safetensors")
ORDER = [8, 0, 3, 3, 8, 1, 0]  # any order, repeats included


def refused(path, *words) -> str:
    """The one-line refusal of ``path``, which must name the file and each of ``words``."""
    with pytest.raises(DatasetFileError) as info:
        open_activations(path)
    message = str(info.value)
    assert "\n" not in message and os.path.basename(path) in message, message
    for word in words:
        assert word in message, message
    return message


# ----------------------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", ACTIVATION_SUFFIXES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_rows_come_back_as_written_in_any_order(tmp_path, suffix, dtype):
    acts = ACTS.astype(dtype)
    path = write_activations(tmp_path / f"acts{suffix}", acts)
    found = open_activations(path)
    assert (found.n, found.dim, found.dtype) == (9, 4, np.dtype(dtype))
    assert found.factors is None and found.factor_names == () and found.factors_num_values == []
    rows = found.rows(ORDER)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, acts[ORDER].astype(np.float32))  # float16 -> float32 is exact
    np.testing.assert_array_equal(found.rows(np.arange(9)), acts.astype(np.float32))
    assert found.description == f"activations 9 × 4 {np.dtype(dtype).name} from acts{suffix} (no factors)"


@pytest.mark.parametrize("suffix", WITH_FACTORS)
def test_factors_and_their_names_come_back(tmp_path, suffix):
    found = open_activations(write_activations(tmp_path / f"acts{suffix}", ACTS, FACTORS, NAMES))
    assert found.factors.dtype == np.int32
    np.testing.assert_array_equal(found.factors, FACTORS)
    assert found.factor_names == tuple(NAMES)
    assert found.factors_num_values == [int(v) + 1 for v in FACTORS.max(axis=0)]
    assert "(3 factors: shape, scale, hue)" in found.description
    one = open_activations(write_activations(tmp_path / f"one{suffix}", ACTS, FACTORS[:, :1], NAMES[:1]))
    assert one.description.endswith("(1 factor: shape)")
    np.testing.assert_array_equal(found.rows(ORDER), ACTS[ORDER])


@pytest.mark.parametrize("suffix", WITH_FACTORS)
def test_factors_without_names_are_numbered(tmp_path, suffix):
    found = open_activations(write_activations(tmp_path / f"acts{suffix}", ACTS, FACTORS))
    assert found.factor_names == ("factor_0", "factor_1", "factor_2")


def test_h5_names_may_be_variable_length_strings_or_bytes(tmp_path):
    for kind, names in (("str", NAMES), ("bytes", [n.encode() for n in NAMES])):
        path = tmp_path / f"{kind}.h5"
        with h5py.File(path, "w") as h5:
            h5["activations"], h5["factors"] = ACTS, FACTORS
            h5.create_dataset("factor_names", data=names, dtype=h5py.string_dtype() if kind == "str" else None)
        assert open_activations(path).factor_names == tuple(NAMES)


def test_rows_are_read_in_blocks_with_progress(tmp_path):
    found = open_activations(write_activations(tmp_path / "acts.h5", ACTS))
    seen = []
    rows = found.rows([5, 2, 7, 2, 0], progress=lambda done, total: seen.append((done, total)), batch_size=2)
    np.testing.assert_array_equal(rows, ACTS[[5, 2, 7, 2, 0]])
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert found.rows([]).shape == (0, 4)


@pytest.mark.parametrize("bad", [[9], [-1], [0, 12]])
def test_rows_outside_the_file_are_one_value_error(tmp_path, bad):
    found = open_activations(write_activations(tmp_path / "acts.npy", ACTS))
    with pytest.raises(ValueError) as info:
        found.rows(bad)
    assert "\n" not in str(info.value) and "acts.npy" in str(info.value) and "outside" in str(info.value)
    assert not isinstance(info.value, IndexError)


def test_a_npy_is_read_in_slabs_never_mapped(tmp_path):
    # A mapping's pages count in the process's resident memory while it lives: opening (the NaN scan) and
    # reading rows leave no mapping of the file behind, so a large file does not weigh its size there.
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc/self/maps here")
    path = write_activations(tmp_path / "acts.npy", ACTS)
    found = open_activations(path)
    np.testing.assert_array_equal(found.rows(np.array([3, 0, 2])), ACTS[[3, 0, 2]])
    assert str(path) not in maps.read_text()


def test_nan_scan_counts_across_blocks(tmp_path):
    acts = np.zeros((70_000, 1), np.float16)  # more rows than one block of the scan
    acts[[5, 65_600, 69_999]] = [[np.nan], [np.inf], [-np.inf]]
    path = tmp_path / "acts.npy"
    np.save(path, acts)
    refused(path, "activations", "3 row(s) with NaN or infinite values", "the first is row 5")


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".h5", ".safetensors", "-deflated.npz"])
def test_many_rows_are_read_across_blocks_in_any_order(tmp_path, suffix):
    acts = np.random.default_rng(5).normal(size=(140_000, 3)).astype(np.float32)  # over two scan blocks
    path = tmp_path / f"acts{suffix}"
    if suffix == "-deflated.npz":
        np.savez_compressed(path, activations=acts)  # a compressed member is read forwards, never whole
    else:
        write_activations(path, acts)
    wanted = np.random.default_rng(6).integers(0, 140_000, size=90_000)
    np.testing.assert_array_equal(open_activations(path).rows(wanted), acts[wanted])


# ------------------------------------------------------------------------------------------- refusals
def test_unknown_extension_missing_file_directory_and_fifo(tmp_path):
    (tmp_path / "acts.csv").write_text("1,2\n")
    refused(tmp_path / "acts.csv", "activations", "unknown extension '.csv'")
    refused(tmp_path / "absent.npz", "activations", "no such file")
    (tmp_path / "dir.npz").mkdir()
    refused(tmp_path / "dir.npz", "activations", "not a regular file")
    os.mkfifo(tmp_path / "pipe.npy")
    refused(tmp_path / "pipe.npy", "activations", "not a regular file")  # and does not wait on the pipe


def _boom():
    raise AssertionError("a pickle was loaded")


class _Trap:
    def __reduce__(self):
        return (_boom, ())


def test_object_arrays_and_pickles_are_never_unpickled(tmp_path):
    trap = np.array([[_Trap(), _Trap()], [_Trap(), _Trap()]], dtype=object)
    np.savez(tmp_path / "obj.npz", activations=trap)
    refused(tmp_path / "obj.npz", "activations", "Python objects")
    np.save(tmp_path / "obj.npy", trap, allow_pickle=True)
    refused(tmp_path / "obj.npy", "activations", "Python objects")
    (tmp_path / "pickle.npy").write_bytes(pickle.dumps(trap))
    refused(tmp_path / "pickle.npy", "activations")
    np.savez(tmp_path / "names.npz", activations=ACTS, factors=FACTORS,
             factor_names=np.array(["a", _Trap(), "c"], dtype=object))
    refused(tmp_path / "names.npz", "factor_names", "Python objects")


def write_raw(path, activations, factors=None, factor_names=None):
    """Write a file in ``path``'s format without any of write_activations' checks."""
    arrays = {"activations": activations}
    if factors is not None:
        arrays["factors"] = factors
    suffix = path.suffix
    if suffix == ".npy":
        np.save(path, activations)
    elif suffix == ".npz":
        np.savez(path, **arrays, **({} if factor_names is None else {"factor_names": np.asarray(factor_names)}))
    elif suffix == ".h5":
        with h5py.File(path, "w") as h5:
            for key, value in arrays.items():
                h5[key] = value
            if factor_names is not None:
                strings = all(isinstance(name, str) for name in factor_names)
                h5.create_dataset("factor_names", data=factor_names, dtype=h5py.string_dtype() if strings else None)
    else:
        save_file(arrays, str(path), metadata=None if factor_names is None else {"factor_names": factor_names})
    return path


ALL = (".npz", ".npy", ".h5", ".safetensors")


@pytest.mark.parametrize("suffix", ALL)
@pytest.mark.parametrize("acts, words", [
    (np.zeros(9, np.float32), ["has shape (9,)", "2 dimensions"]),
    (np.zeros((9, 2, 2), np.float32), ["has shape (9, 2, 2)"]),
    (np.zeros((9, 4), np.int32), ["dtype int32", "float16, float32 or float64"]),
    (np.zeros((1, 4), np.float32), ["1 row(s); at least 2"]),
    (np.zeros((9, 0), np.float32), ["no columns"]),
    (np.where(np.arange(36).reshape(9, 4) % 7 == 3, np.nan, 1.0).astype(np.float32),
     ["5 row(s) with NaN or infinite values", "the first is row 0"]),
])
def test_bad_activations_are_refused(tmp_path, suffix, acts, words):
    refused(write_raw(tmp_path / f"acts{suffix}", acts), "activations", *words)


@pytest.mark.parametrize("suffix", WITH_FACTORS[:2] + WITH_FACTORS[3:])
@pytest.mark.parametrize("factors, words", [
    (np.zeros(9, np.int64), ["factors has shape (9,)"]),
    (np.ones((9, 3), np.float64), ["factors has dtype float64", "integers"]),
    (np.zeros((5, 3), np.int64), ["factors has 5 rows, activations 9"]),
    (np.where(np.arange(27).reshape(9, 3) == 7, -1, 0), ["factors has negative values", "row 2, factor 1"]),
])
def test_bad_factors_are_refused(tmp_path, suffix, factors, words):
    refused(write_raw(tmp_path / f"acts{suffix}", ACTS, factors), *words)


def test_names_of_the_wrong_length_or_kind_are_refused(tmp_path):
    refused(write_raw(tmp_path / "short.npz", ACTS, FACTORS, np.array(["a", "b"])),
            "factor_names has 2 names, factors 3 columns")
    refused(write_raw(tmp_path / "ints.npz", ACTS, FACTORS, np.arange(3)), "factor_names has dtype", "strings")
    refused(write_raw(tmp_path / "ints.h5", ACTS, FACTORS, np.arange(3)), "factor_names has dtype", "strings")
    refused(write_raw(tmp_path / "ints.safetensors", ACTS, FACTORS, "[1, 2, 3]"), "factor_names holds int")
    refused(write_raw(tmp_path / "json.safetensors", ACTS, FACTORS, "shape, scale"), "factor_names", "JSON list")
    refused(write_raw(tmp_path / "twice.h5", ACTS, FACTORS, ["a", "b", "a"]), "factor_names names 'a' twice")
    refused(write_raw(tmp_path / "alone.npz", ACTS, None, np.array(NAMES)), "factor_names given without factors")


@pytest.mark.parametrize("suffix", ALL)
def test_a_file_of_another_kind_is_one_line(tmp_path, suffix):
    path = tmp_path / f"acts{suffix}"
    path.write_bytes(b"activations,1,2\n" * 20)
    refused(path, "not a readable")


def test_the_writer_refuses_before_writing(tmp_path):
    nan = ACTS.copy()
    nan[4, 1] = np.nan
    cases = [("nan.npz", dict(activations=nan), "NaN"),
             ("floats.h5", dict(activations=ACTS, factors=FACTORS.astype(float)), "integers"),
             ("factors.npy", dict(activations=ACTS, factors=FACTORS), "activations only"),
             ("short.safetensors", dict(activations=ACTS, factors=FACTORS, factor_names=["a"]), "1 names"),
             ("acts.txt", dict(activations=ACTS), "unknown extension")]
    for name, arrays, words in cases:
        with pytest.raises(DatasetFileError, match=words):
            write_activations(tmp_path / name, **arrays)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- damage
@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A small valid file of each format, as bytes."""
    folder = tmp_path_factory.mktemp("written")
    return {suffix: write_activations(folder / f"acts{suffix}", ACTS, None if suffix == ".npy" else FACTORS,
                                      None if suffix == ".npy" else NAMES).read_bytes() for suffix in ALL}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_flipped_bytes_are_refused_or_harmless(tmp_path, written, data):
    suffix = data.draw(st.sampled_from(ALL))
    raw = bytearray(written[suffix])
    if data.draw(st.booleans()):
        damage, raw = "truncated", raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        at = data.draw(st.integers(0, len(raw) - 1))
        damage, raw[at] = "flipped", raw[at] ^ data.draw(st.integers(1, 255))
    path = tmp_path / f"damaged{suffix}"
    path.write_bytes(bytes(raw))
    try:
        found = open_activations(path)
        rows = found.rows(np.arange(found.n)[::-1])
    except DatasetFileError as err:
        assert "\n" not in str(err) and path.name in str(err)
        return
    assert (found.n, found.dim) == ACTS.shape and rows.dtype == np.float32 and np.isfinite(rows).all()
    if damage == "truncated" or suffix in (".npz", ".h5"):
        # Checksums (the zip's CRC-32, HDF5's Fletcher-32 and metadata checksums) vouch for every byte.
        np.testing.assert_array_equal(rows, ACTS[::-1])
        if suffix != ".npy":
            np.testing.assert_array_equal(found.factors, FACTORS)
            assert found.factor_names == tuple(NAMES)
    # .npy and .safetensors carry no checksum: a flipped data byte is another number, which no reader
    # can tell from the real one; they must still give a well-formed file or a refusal.


def test_a_damaged_zip_directory_cannot_hide_or_rename_a_member(tmp_path, written):
    # The zip's directory has no checksum: renaming a member there, or a comment length that swallows the
    # entries after it, would silently drop the names or the factors.
    raw = written[".npz"]
    directory = raw.index(b"PK\x01\x02")
    renamed = bytearray(raw)
    at = raw.rindex(b"factor_names.npy")
    renamed[at] ^= 1
    swallowed = bytearray(raw)
    swallowed[directory + 32] ^= 0x80  # the first entry's comment length
    for name, damaged in (("renamed.npz", renamed), ("swallowed.npz", swallowed)):
        (tmp_path / name).write_bytes(bytes(damaged))
        refused(tmp_path / name, "not a readable npz file")


def test_a_npy_must_be_exactly_as_long_as_its_header_says(tmp_path, written):
    (tmp_path / "long.npy").write_bytes(written[".npy"] + b"\0" * 16)
    refused(tmp_path / "long.npy", "activations", "16 bytes more than its header accounts for")
    (tmp_path / "short.npy").write_bytes(written[".npy"][:-4])
    refused(tmp_path / "short.npy", "activations is truncated")


# ------------------------------------------------------------------------------------------ fingerprint
def test_fingerprint_follows_the_bytes(tmp_path):
    first = write_activations(tmp_path / "a.safetensors", ACTS, FACTORS, NAMES)
    assert open_activations(first).fingerprint() == open_activations(first).fingerprint()
    changed = ACTS.copy()
    changed[3, 2] += 1
    second = write_activations(tmp_path / "b.safetensors", changed, FACTORS, NAMES)
    found = open_activations(second)
    assert found.fingerprint() != open_activations(first).fingerprint()
    assert len(found.fingerprint()) == 64 and found.fingerprint() is found.fingerprint()  # computed once
