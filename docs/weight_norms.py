"""The sizes of the trained SAEs' weights in a sweep, row by row: where a remedy sends the weights every
neuron shares (``b_dec``) or every encoder row (their norms), as a diagnostic of why it helps or harms.

    python docs/weight_norms.py SWEEP_DIR

For each row of the sweep (its remedy and settings; seeds pooled only within the row), the median over its
seeds of: the norm of ``b_dec``, the median encoder bias, and the median norm of an encoder column (one
neuron's input weights), read from each run's ``sae.keras``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collapse_tui.store import SAE_FILE, sweep_records  # noqa: E402


def norms(sae) -> tuple[float, float, float]:
    """|b_dec|, the median encoder bias and the median encoder column norm of one SAE."""
    from keras import ops

    b_dec, b_enc, w_enc = (ops.convert_to_numpy(v) for v in (sae.b_dec, sae.b_enc, sae.W_enc))
    return float(np.linalg.norm(b_dec)), float(np.median(b_enc)), float(np.median(np.linalg.norm(w_enc, axis=0)))


def rows(sweep_dir: Path) -> list[tuple[str, int, tuple[float, float, float]]]:
    """(row label, seeds, medians of :func:`norms` over its seeds) per row, in the sweep's order."""
    import keras

    import collapse_tui.nn  # noqa: F401  (registers the SAE's class for loading)
    from collapse_tui.report import build_rows

    found, _ = build_rows([r for r in sweep_records(sweep_dir) if not r.error])
    out = []
    for row in found:
        measured = [norms(keras.saving.load_model(d / SAE_FILE, compile=False)) for d in row.run_dirs
                    if (d / SAE_FILE).is_file()]
        if measured:
            label = " ".join(filter(None, (row.method, row.remedy, row.setting)))
            out.append((label, len(measured), tuple(float(v) for v in np.median(np.array(measured), axis=0))))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep directory")
    args = parser.parse_args()
    print("| row | seeds | abs(b_dec) | median b_enc | median encoder column norm |\n|---|---|---|---|---|")
    for label, n, (b_dec, b_enc, w_enc) in rows(args.sweep_dir):
        print(f"| {label} | {n} | {b_dec:.2f} | {b_enc:+.3f} | {w_enc:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
