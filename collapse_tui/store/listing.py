"""``listing.json``: a run's config.yaml as JSON, so that thousands of runs list in a second or two.

Why: config.yaml is parsed by the bounded pure-Python YAML composer (:func:`collapse_tui.config.
parse_yaml`), about 17 ms a run: 95% of listing a runs dir, half a minute for 2,000 runs. JSON parses in
tens of microseconds. The YAML stays the run's record (people read and diff it); the sidecar is a cache
of it that a reader trusts only when it proves it is one:

- it names the digest of the config.yaml bytes it was made from: a config.yaml edited, replaced or
  damaged since (or one written by a version that wrote no sidecar) no longer matches, and the reader
  parses the YAML as before (:func:`read_listing` returns None);
- it carries a seal, a digest of all the rest of it: a damaged sidecar (a flipped byte, a truncation)
  never yields a different config, only the slow path;
- the writer makes one only after checking that parsing its YAML gives exactly the config it holds;
- a config.yaml cut short after a whole line still parses, into fewer settings: the sidecar's config,
  dumped again, gives back the whole file the run wrote (:func:`written_config`), so a reader can tell a
  file cut short from one edited by hand and refuse it instead of reading defaults for what was cut.

It may also say that the config passed the config checks (``stored_config_errors``) of the code that
wrote it, named by :func:`schema_fingerprint` (a digest of the ``collapse_tui.config`` sources and the pydantic
version): a reader running that same code skips checking it again; any other reader checks it.

So the fast path and the slow one give the same record for every run, or the fast one is not taken.

Layout: one header line, ``collapse-tui-listing <format> <config digest> <fingerprint or -> <seal>``,
then the config as compact JSON.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import yaml

from collapse_tui.config import ConfigError, parse_yaml

FORMAT = 1
MAGIC = b"collapse-tui-listing"
UNCHECKED = "-"
LISTING_LIMIT = 4 << 20  # bytes a sidecar may hold (a config is at most 1 MiB of YAML)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@functools.cache
def schema_fingerprint() -> str | None:
    """What decides whether a stored config passes the config checks: the sources of the config package
    (every module of it, in name order) and the pydantic version it runs on; None where a source cannot
    be read (then nothing is taken as checked)."""
    from pathlib import Path

    import pydantic

    from collapse_tui import config

    try:
        modules = sorted(Path(config.__file__).parent.glob("*.py"))
        source = b"".join(m.name.encode("utf-8") + b"\0" + m.read_bytes() + b"\0" for m in modules)
    except (OSError, TypeError):
        return None
    return _digest(source + b"\0" + pydantic.VERSION.encode("utf-8"))


def _seal(config_digest: bytes, checked: bytes, body: bytes) -> bytes:
    return _digest(b"%d\n%s\n%s\n%s" % (FORMAT, config_digest, checked, body)).encode("ascii")


def _canonical(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def make_listing(config_yaml: bytes, config: dict[str, Any], checked: bool = False) -> bytes | None:
    """The sidecar of a run whose config.yaml holds ``config_yaml``, the YAML of ``config`` (JSON-ready:
    as :func:`~collapse_tui.store.files.jsonable` makes it); ``checked``: the config passed this code's
    config checks. None when the YAML does not parse back to exactly ``config`` (then no sidecar is
    written, and readers parse the YAML)."""
    try:
        body = _canonical(config)
        # Compared as JSON text, not with ==: 1 and 1.0, or the same keys in another order, differ.
        if _canonical(json.loads(body)) != body or _canonical(parse_yaml(config_yaml.decode("utf-8"))) != body:
            return None
    except (TypeError, ValueError, ConfigError, RecursionError):
        return None
    fingerprint = schema_fingerprint() if checked else None
    config_digest = _digest(config_yaml).encode("ascii")
    mark = (fingerprint or UNCHECKED).encode("ascii")
    raw = body.encode("utf-8")
    seal = _seal(config_digest, mark, raw)
    return b" ".join((MAGIC, b"%d" % FORMAT, config_digest, mark, seal)) + b"\n" + raw


def _sealed(listing: bytes) -> tuple[bytes, bytes, bytes] | None:
    """An intact sidecar's config digest, checked mark and body; None for anything else."""
    newline = listing.find(b"\n")
    if newline < 0:
        return None
    fields, body = listing[:newline].split(b" "), listing[newline + 1:]
    if len(fields) != 5 or fields[0] != MAGIC or fields[1] != b"%d" % FORMAT:
        return None
    _, _, config_digest, mark, seal = fields
    return (config_digest, mark, body) if seal == _seal(config_digest, mark, body) else None


def written_config(listing: bytes) -> bytes | None:
    """The config.yaml an intact sidecar was made from, byte for byte, where its config dumps back to
    exactly those bytes (the writer's YAML of it, the same PyYAML); None otherwise. What a config.yaml
    that no longer matches its sidecar is compared with: one cut short is a first part of it."""
    sealed = _sealed(listing)
    if sealed is None:
        return None
    config_digest, _, body = sealed
    try:
        config = json.loads(body.decode("utf-8"))
        text = yaml.safe_dump(config, sort_keys=False).encode("utf-8")
    except (ValueError, RecursionError, yaml.YAMLError):
        return None
    return text if _digest(text).encode("ascii") == config_digest else None


def read_listing(listing: bytes, config_yaml: bytes) -> tuple[dict[str, Any], bool] | None:
    """The config a sidecar holds, and whether this code's config checks passed it already, if the
    sidecar is intact and was made from ``config_yaml`` (the bytes of the run's config.yaml now); None
    otherwise: the caller parses the YAML."""
    sealed = _sealed(listing)
    if sealed is None:
        return None
    config_digest, mark, body = sealed
    if config_digest != _digest(config_yaml).encode("ascii"):
        return None
    try:
        config = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(config, dict):
        return None
    fingerprint = schema_fingerprint()
    return config, fingerprint is not None and mark == fingerprint.encode("ascii")
