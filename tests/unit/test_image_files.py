"""A user's labelled image set (.npz of ``images``, ``factors`` and optional ``factor_names``): round trips,
each refusal as one DatasetFileError line naming the file and the array (by the reader and, before it
writes anything, by the writer), damage refused or harmless, and the file's fingerprint."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui.data.base import DatasetFileError
from collapse_tui.data.image_file import open_images, write_images
from tests.unit.test_activation_files import _Trap  # an object whose unpickling fails the test

RNG = np.random.default_rng(11)
IMAGES = RNG.integers(0, 256, size=(7, 4, 5, 3), dtype=np.uint8)
FACTORS = RNG.integers(0, 4, size=(7, 3))
NAMES = ["shape", "scale", "hue"]
ORDER = [6, 0, 3, 3, 6, 1]  # any order, repeats included


def one_line(err: DatasetFileError, path, *words) -> str:
    """``err``'s message, which must be one line naming ``path``'s file and each of ``words``."""
    message = str(err)
    assert "\n" not in message and os.path.basename(path) in message, message
    for word in words:
        assert word in message, message
    return message


def refused(path, *words) -> str:
    """The one-line refusal of opening ``path``, which must name the file and each of ``words``."""
    with pytest.raises(DatasetFileError) as info:
        open_images(path)
    return one_line(info.value, path, *words)


def write_raw(path, **arrays):
    """An npz of ``arrays`` as given, with none of write_images' checks (object arrays pickled)."""
    np.savez(path, allow_pickle=True, **arrays)
    return path


# ----------------------------------------------------------------------------------------- round trips
def test_images_factors_and_names_come_back_as_written(tmp_path):
    found = open_images(write_images(tmp_path / "set.npz", IMAGES, FACTORS, NAMES))
    assert (found.n, found.image_shape) == (7, (4, 5, 3))
    got = found.images(np.arange(7))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, IMAGES)
    assert found.factors.dtype == np.int32
    np.testing.assert_array_equal(found.factors, FACTORS)
    assert found.factor_names == tuple(NAMES)
    assert found.factors_num_values == [int(v) + 1 for v in FACTORS.max(axis=0)]


def test_factors_without_names_are_numbered(tmp_path):
    found = open_images(write_images(tmp_path / "set.npz", IMAGES, FACTORS))
    assert found.factor_names == ("factor_0", "factor_1", "factor_2")


def test_images_come_back_in_the_order_asked(tmp_path):
    found = open_images(write_images(tmp_path / "set.npz", IMAGES, FACTORS, NAMES))
    np.testing.assert_array_equal(found.images(ORDER), IMAGES[ORDER])
    np.testing.assert_array_equal(found.images(np.array(ORDER, np.uint16)), IMAGES[ORDER])
    seen = []
    found.images([2, 5], progress=lambda done, total: seen.append((done, total)))
    assert seen == [(2, 2)]
    assert found.images([]).shape == (0, 4, 5, 3)


@pytest.mark.parametrize("bad", [[7], [-1], [0, 12], [[0, 1], [2, 3]], [0.0, 1.0], [True, False]])
def test_indices_outside_the_set_or_not_a_vector_of_integers_are_a_value_error(tmp_path, bad):
    found = open_images(write_images(tmp_path / "set.npz", IMAGES, FACTORS))
    with pytest.raises(ValueError) as info:
        found.images(bad)
    assert "\n" not in str(info.value) and not isinstance(info.value, IndexError)


def test_description_names_the_count_the_image_shape_and_the_factors(tmp_path):
    found = open_images(write_images(tmp_path / "set.npz", IMAGES, FACTORS, NAMES))
    description = found.description
    assert "7 images" in description and "4×5×3" in description and "set.npz" in description
    for name in NAMES:
        assert name in description
    assert repr(found) == f"<ImageFile {description}>"


def test_fingerprint_follows_the_bytes(tmp_path):
    first = write_images(tmp_path / "a.npz", IMAGES, FACTORS, NAMES)
    assert open_images(first).fingerprint() == open_images(first).fingerprint()
    assert open_images(first).sha256 == hashlib.sha256(first.read_bytes()).hexdigest()
    changed = IMAGES.copy()
    changed[3, 2, 1, 0] ^= 1  # one pixel
    second = write_images(tmp_path / "b.npz", changed, FACTORS, NAMES)
    assert open_images(second).fingerprint() != open_images(first).fingerprint()


# ------------------------------------------------------------------------------------------- refusals
def test_missing_file_directory_and_wrong_extension(tmp_path):
    refused(tmp_path / "absent.npz", "images", "no such file")
    (tmp_path / "dir.npz").mkdir()
    refused(tmp_path / "dir.npz", "images", "not a regular file")
    np.save(tmp_path / "set.npy", IMAGES)
    refused(tmp_path / "set.npy", "images", "unknown extension '.npy'")
    (tmp_path / "text.npz").write_text("images,factors\n" * 20)
    refused(tmp_path / "text.npz", "not a readable npz file")


@pytest.mark.parametrize("images, words", [
    (IMAGES.astype(np.float32), ["images has dtype float32", "uint8"]),
    (IMAGES[..., 0], ["images has shape (7, 4, 5)", "4 dimensions"]),
    (IMAGES[:1], ["images has 1 image(s)", "at least 2"]),
    (IMAGES[:, :0], ["images has an empty image shape"]),
    (np.asfortranarray(IMAGES), ["images is stored in Fortran order"]),
])
def test_bad_images_are_refused(tmp_path, images, words):
    factors = FACTORS[:len(images)]
    refused(write_raw(tmp_path / "set.npz", images=images, factors=factors), *words)


def test_no_images_or_no_factors_are_refused(tmp_path):
    refused(write_raw(tmp_path / "bare.npz", factors=FACTORS), "no 'images' array", "factors")
    refused(write_raw(tmp_path / "unlabelled.npz", images=IMAGES), "no 'factors' array", "images")


def test_object_arrays_are_never_unpickled(tmp_path):
    trap = np.empty((2, 1, 1, 1), dtype=object)
    trap[0, 0, 0, 0], trap[1, 0, 0, 0] = _Trap(), _Trap()
    refused(write_raw(tmp_path / "images.npz", images=trap, factors=FACTORS[:2]), "images", "Python objects")
    factors = np.array([[_Trap()]] * 7, dtype=object)
    refused(write_raw(tmp_path / "factors.npz", images=IMAGES, factors=factors), "factors", "Python objects")
    names = np.array(["a", _Trap(), "c"], dtype=object)
    refused(write_raw(tmp_path / "names.npz", images=IMAGES, factors=FACTORS, factor_names=names),
            "factor_names", "Python objects")


@pytest.mark.parametrize("factors, words", [
    (FACTORS.astype(np.float64), ["factors has dtype float64", "integers"]),
    (FACTORS[:, 0], ["factors has shape (7,)", "2 dimensions"]),
    (FACTORS[:5], ["factors has 5 rows, images 7"]),
    (FACTORS[:, :0], ["factors has no columns"]),
    (np.where(np.arange(21).reshape(7, 3) == 7, -1, 0), ["factors has negative values", "row 2, factor 1"]),
])
def test_bad_factors_are_refused(tmp_path, factors, words):
    refused(write_raw(tmp_path / "set.npz", images=IMAGES, factors=factors), *words)


@pytest.mark.parametrize("names, words", [
    (np.array(["a", "b"]), ["factor_names has 2 names, factors 3 columns"]),
    (np.array(["a", "b", "a"]), ["factor_names names 'a' twice"]),
    (np.arange(3), ["factor_names has dtype int64", "strings"]),
    (np.array([b"a", b"b", b"c"]), ["factor_names has dtype", "strings"]),
    (np.array(["a", "", "c"]), ["factor_names has an empty or unprintable name at position 1"]),
])
def test_bad_factor_names_are_refused(tmp_path, names, words):
    refused(write_raw(tmp_path / "set.npz", images=IMAGES, factors=FACTORS, factor_names=names), *words)


@pytest.mark.parametrize("name, arrays, words", [
    ("floats.npz", dict(images=IMAGES.astype(np.float32), factors=FACTORS), ["images", "uint8"]),
    ("flat.npz", dict(images=IMAGES[..., 0], factors=FACTORS), ["images", "4 dimensions"]),
    ("one.npz", dict(images=IMAGES[:1], factors=FACTORS[:1]), ["images", "at least 2"]),
    ("objects.npz", dict(images=IMAGES.astype(object), factors=FACTORS), ["images", "Python objects"]),
    ("fl.npz", dict(images=IMAGES, factors=FACTORS.astype(float)), ["factors", "integers"]),
    ("vector.npz", dict(images=IMAGES, factors=FACTORS[:, 0]), ["factors", "2 dimensions"]),
    ("rows.npz", dict(images=IMAGES, factors=FACTORS[:5]), ["factors has 5 rows, images 7"]),
    ("cols.npz", dict(images=IMAGES, factors=FACTORS[:, :0]), ["factors has no columns"]),
    ("neg.npz", dict(images=IMAGES, factors=-FACTORS - 1), ["factors has negative values"]),
    ("short.npz", dict(images=IMAGES, factors=FACTORS, factor_names=["a"]), ["factor_names has 1 names"]),
    ("twice.npz", dict(images=IMAGES, factors=FACTORS, factor_names=["a", "b", "a"]), ["factor_names", "twice"]),
    ("ints.npz", dict(images=IMAGES, factors=FACTORS, factor_names=[1, 2, 3]), ["factor_names holds int"]),
    ("obj.npz", dict(images=IMAGES, factors=FACTORS, factor_names=np.array(["a", _Trap(), "c"], dtype=object)),
     ["factor_names holds _Trap"]),
    ("set.npy", dict(images=IMAGES, factors=FACTORS), ["images", ".npz"]),
])
def test_the_writer_refuses_before_writing(tmp_path, name, arrays, words):
    with pytest.raises(DatasetFileError) as info:
        write_images(tmp_path / name, arrays["images"], arrays["factors"], arrays.get("factor_names"))
    one_line(info.value, name, *words)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------- damage
@pytest.fixture(scope="module")
def written(tmp_path_factory) -> bytes:
    """A small valid image set, as bytes."""
    return write_images(tmp_path_factory.mktemp("written") / "set.npz", IMAGES, FACTORS, NAMES).read_bytes()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_flipped_truncated_or_lengthened_copies_are_refused_or_the_same(tmp_path, written, data):
    raw = bytearray(written)
    damage = data.draw(st.sampled_from(["flipped", "truncated", "appended"]))
    if damage == "flipped":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(st.integers(1, 255))
    elif damage == "truncated":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    else:
        raw += data.draw(st.binary(min_size=1, max_size=64))
    path = tmp_path / "damaged.npz"
    path.write_bytes(bytes(raw))
    try:
        found = open_images(path)
        images = found.images(np.arange(found.n)[::-1])
    except DatasetFileError as err:
        one_line(err, path)
        return
    # The zip's CRC-32 vouches for every byte of every member: what opens is the file as written.
    np.testing.assert_array_equal(images, IMAGES[::-1])
    np.testing.assert_array_equal(found.factors, FACTORS)
    assert found.factor_names == tuple(NAMES) and found.image_shape == IMAGES.shape[1:]
