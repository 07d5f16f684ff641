"""The precision runs compute in, refused in one line before anything trains when the tool cannot train in it.

It is set by Keras' ``floatx`` (``"floatx"`` in keras.json, or ``keras.config.set_floatx``), which Keras turns
into its global dtype policy when a process builds its first layer; from then on that policy is what models
are built in (a later ``set_floatx`` changes nothing), so it is what is checked, recorded and keyed here.

float32 (Keras' default) and float64 train on every backend. float16 does not: the VAE's loss turns NaN
within its first steps, on every backend. bfloat16 does not either: its arrays are not ones numpy can hold,
so the VAE fails in its first step (in keras.json Keras refuses it as it loads:
:func:`~collapse_tui.engine.backend_check.backend_problem` says so before then). float64 on JAX needs
JAX's 64-bit mode (``JAX_ENABLE_X64=1``): without it JAX makes every float64 array float32 while Keras still
calls it float64, so a run would record a precision it did not compute in. Mixed policies set in code
(``keras.config.set_dtype_policy("mixed_float16")``) are refused as float16 is.

The precision is recorded with every run (its environment) and is part of a VAE's cache key when it is not
float32 (:func:`~collapse_tui.engine.vae_phase.vae_key`): a float64 VAE is never reused by a float32 run.
"""

from __future__ import annotations

from collapse_tui.engine.backend_check import keras_json_path

SUPPORTED_PRECISIONS = ("float32", "float64")
DEFAULT_PRECISION = "float32"  # Keras' own default; its VAE keys are those from before precision was keyed


def precision() -> str:
    """The precision models are built and computed in: the name of Keras' global dtype policy (``float32``,
    ``float64``, ... as floatx made it; ``mixed_float16`` and the like when code set one)."""
    import keras

    return keras.config.dtype_policy().name


def precision_problem(value: str | None = None, backend: str | None = None) -> str | None:
    """Why runs cannot train in the precision ``value`` (default: :func:`precision`) on ``backend``
    (default: the loaded one), in one line naming the setting and how to change it; None when they can."""
    import keras

    value = precision() if value is None else value
    backend = keras.backend.backend() if backend is None else backend
    if value not in SUPPORTED_PRECISIONS:
        fix = _fix(value, '"float32" (or "float64")')
        return f"{_setting(value)}, which collapse-tui cannot train in: {fix}"
    if value == "float64" and backend == "jax" and not _jax_x64():
        fix = _fix(value, '"float32"')
        return (f"{_setting(value)}, which the jax backend computes in float32 unless JAX's 64-bit mode is on: "
                f"set JAX_ENABLE_X64=1, or {fix}")
    return None


def _setting(value: str) -> str:
    """Where ``value`` comes from: floatx, or a dtype policy set in code."""
    import keras

    if value == keras.config.floatx():
        return f"Keras' floatx is {value!r} ({keras_json_path()} or keras.config.set_floatx)"
    return f"Keras' dtype policy is {value!r} (keras.config.set_dtype_policy)"


def _fix(value: str, instead: str) -> str:
    import keras

    return f'set "floatx": {instead} there' if value == keras.config.floatx() else f"set the policy to {instead}"


def _jax_x64() -> bool:
    import jax

    try:
        return bool(jax.config.read("jax_enable_x64"))
    except (AttributeError, KeyError):  # an older or newer JAX: the option's attribute
        return bool(getattr(jax.config, "jax_enable_x64", False))
