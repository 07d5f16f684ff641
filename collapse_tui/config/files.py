"""Config files read safely: YAML within bounds on size, depth and alias expansion, then validated and
expanded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from collapse_tui.config.schema import ConfigError, RunConfig, shorten
from collapse_tui.config.sweeps import expand

# A config is a few kilobytes of YAML; these bounds refuse what no config needs (a file the size of a
# dataset, nesting thousands deep, an alias "bomb" that expands a few hundred bytes into millions of
# values) with one line instead of a hang, a RecursionError or a 39 MB error message.
MAX_CONFIG_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NODES = 100_000  # values, counted with every alias expanded



class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses nesting deeper than :data:`MAX_DEPTH` while composing (the
    composer recurses once per level)."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    """A YAML document outside the bounds above."""


def _expanded_size(node: yaml.Node) -> int:
    """Values in ``node`` with every alias expanded, counted in time linear in the *composed* document
    (each distinct node once), stopping as soon as the count passes :data:`MAX_NODES`."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        key = id(n)
        if key in sizes:
            if sizes[key] < 0:
                raise _Refused("an alias refers to a value that contains it (a recursive anchor)")
            return sizes[key]
        sizes[key] = -1
        total = 1
        if isinstance(n, yaml.SequenceNode):
            total += sum(size(child) for child in n.value)
        elif isinstance(n, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in n.value)
        if total > MAX_NODES:
            raise _Refused(f"expands to more than {MAX_NODES:,} values (through its aliases)")
        sizes[key] = total
        return total

    return size(node)


def parse_yaml(text: str, source: str | None = None) -> Any:
    """Parse one YAML document within the bounds above; :class:`ConfigError` for a syntax error or a
    document outside them."""
    loader = None
    try:
        loader = _BoundedLoader(text)  # reads the text first: a character YAML never allows (a NUL) fails here
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node)
        return loader.construct_document(node)
    except _Refused as exc:
        raise ConfigError([f"refused: the YAML is {exc}"], source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = shorten(str(getattr(exc, "problem", None) or " ".join(str(exc).split())))
        raise ConfigError([f"YAML syntax error{where}: {problem}"], source) from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file, turning I/O, encoding, size and syntax problems into :class:`ConfigError`."""
    path = Path(path)
    try:
        if not path.is_file():
            what = "a directory" if path.is_dir() else "not a regular file" if path.exists() else "no such file"
            raise ConfigError([f"cannot read {path}: {what}"])
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([f"refused: {size:,} bytes is too large for a config file (at most "
                               f"{MAX_CONFIG_BYTES:,})"], str(path))
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not a UTF-8 text file (byte {exc.start}); a config is YAML text"], str(path)) from None
    data = parse_yaml(text, str(path))
    return {} if data is None else data


def load(path: str | Path) -> list[tuple[RunConfig, dict[str, Any]]]:
    """Load, validate and expand a config file."""
    return expand(load_yaml(path), str(path))


