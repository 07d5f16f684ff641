"""The procedural Shapes3D renderer: grid, index order, determinism, and that every factor shows."""

import numpy as np
import pytest

from collapse_tui.data.shapes3d import FACTOR_SIZES, SKY_RGB, ProceduralShapes3D, hsv_to_rgb, render


@pytest.fixture(scope="module")
def data():
    return ProceduralShapes3D()


def _hue(rgb):
    """Hue in [0, 1) of RGB pixels (..., 3)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    mx, mn = rgb.max(-1), rgb.min(-1)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    c = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, ((g - b) / c) % 6, np.where(mx == g, (b - r) / c + 2, (r - g) / c + 4))
    return (h / 6.0) % 1.0


def _hue_dist(a, b):
    d = np.abs(a - b) % 1.0
    return np.minimum(d, 1 - d)


def test_grid_and_strides(data):
    assert len(data) == 480_000
    assert data.factor_sizes == (10, 10, 10, 8, 4, 15)
    assert data.strides.tolist() == [48000, 4800, 480, 60, 15, 1]
    np.testing.assert_allclose(data.factor_values[3], np.linspace(0.75, 1.25, 8))
    np.testing.assert_allclose(data.factor_values[5], np.linspace(-30, 30, 15))
    np.testing.assert_allclose(data.factor_values[0], np.arange(10) / 10)
    assert data.image_shape == (64, 64, 3) and data.input_scale == pytest.approx(1 / 255)
    assert data.fingerprint().startswith("shapes3d-procedural-v")
    assert "generated" in data.description and "not the official" in data.description


def test_index_round_trip(data):
    idx = data.sample_indices(200, random_state=0)
    f = data.index_to_factors(idx)
    np.testing.assert_array_equal(data.factors_to_index(f), idx)
    np.testing.assert_array_equal(data.index_to_factors([479_999])[0], np.array(FACTOR_SIZES) - 1)
    np.testing.assert_array_equal(data.index_to_factors([15])[0], [0, 0, 0, 0, 1, 0])


def test_dtype_shape_determinism(data):
    idx = np.array([0, 123_456, 479_999, 123_456])
    a = data.images(idx)
    assert a.dtype == np.uint8 and a.shape == (4, 64, 64, 3)
    np.testing.assert_array_equal(a, data.images(idx))
    np.testing.assert_array_equal(a[1], a[3])
    with pytest.raises(ValueError, match="indices"):
        data.images([480_000])


def test_every_factor_changes_pixels(data):
    rs = np.random.RandomState(1)
    base = data.sample_factors(30, rs)
    imgs = render(base).astype(int)
    for j, size in enumerate(FACTOR_SIZES):
        moved = base.copy()
        moved[:, j] = (moved[:, j] + rs.randint(1, size, size=30)) % size
        diff = np.abs(render(moved).astype(int) - imgs).sum(axis=(1, 2, 3))
        assert (diff > 0).all(), f"changing {data.factor_names[j]} left some image unchanged"


def test_sky_colour(data):
    imgs = data.images(data.sample_indices(20, random_state=2))
    top = imgs[:, :4].reshape(-1, 3).astype(float)
    np.testing.assert_allclose(top.mean(0), SKY_RGB, atol=2)


def test_hsv_to_rgb_known_values():
    np.testing.assert_allclose(hsv_to_rgb(np.array([0.0, 1 / 3, 2 / 3, 0.5])),
                               [[255, 0, 0], [0, 255, 0], [0, 0, 255], [0, 255, 255]], atol=1e-9)


@pytest.mark.parametrize("hue_class", [0, 3, 6, 8])
def test_surface_colours_follow_their_hues(data, hue_class):
    others = (hue_class + 5) % 10
    for shape in range(4):
        f = np.array([[others, others, hue_class, 4, shape, 7],   # object hue
                      [hue_class, others, others, 4, shape, 7],   # floor hue
                      [others, hue_class, others, 4, shape, 7]])  # wall hue
        img = render(f)
        want = hue_class / 10
        assert _hue_dist(_hue(img[0, 45, 32]), want) < 0.02      # the object's middle
        assert _hue_dist(_hue(img[1, 60, 4]), want) < 0.02       # the floor's near left corner
        assert _hue_dist(_hue(img[2, 25, 4]), want) < 0.02       # the back wall's left part


def test_scale_grows_object_area(data):
    for shape in range(4):
        for orient in (0, 7, 14):
            f = np.array([[0, 0, 5, s, shape, orient] for s in range(8)])
            img = render(f).astype(int)
            # Object hue 0.5 is cyan: the only pixels whose red is low and green and blue are high.
            mask = (img[..., 0] < 100) & (img[..., 1] > 100) & (img[..., 2] > 100)
            area = mask.sum(axis=(1, 2))
            assert (np.diff(area) > 0).all(), (shape, orient, area)


def test_images_progress(data):
    calls = []
    out = data.images(np.arange(10), progress=lambda done, total: calls.append((done, total)), batch_size=4)
    assert out.shape == (10, 64, 64, 3)
    assert calls == [(4, 10), (8, 10), (10, 10)]
