"""The sparsity methods as kernels: each method's arithmetic (training activation, inference rule,
penalty, updates of its variables), written once over a leading member axis in ``keras.ops`` only, used
by a lone :class:`~collapse_tui.nn.SparseAutoencoder` (one member) and by an
:class:`~collapse_tui.nn.sae_bank.SAEBank` (N members) alike.

The schema's vocabulary (:data:`collapse_tui.config.SPARSITY_METHODS`, ``K_METHODS``,
``PENALTY_METHODS``) names the methods; :data:`KERNELS` maps each name to its kernel. Adding a method
is one module with its :class:`~collapse_tui.nn.methods.common.Kernel`, one line here, and its tests
(and, if a lone SAE must save variables of the method, a layer holding them, listed in
:data:`collapse_tui.nn.activations.METHOD_LAYERS`).
"""

from __future__ import annotations

from collapse_tui.nn.methods.batchtopk import BatchTopK
from collapse_tui.nn.methods.common import Kernel
from collapse_tui.nn.methods.jumprelu import JumpReLU
from collapse_tui.nn.methods.l1 import L1
from collapse_tui.nn.methods.topk import TopK

KERNELS: dict[str, type[Kernel]] = {kernel.name: kernel for kernel in (TopK, BatchTopK, L1, JumpReLU)}


def kernel(method: str) -> type[Kernel]:
    """The kernel of the schema's ``method``."""
    try:
        return KERNELS[method]
    except KeyError:
        raise ValueError(f"unknown sparsity method {method!r}; known: {sorted(KERNELS)}") from None


__all__ = ["KERNELS", "L1", "BatchTopK", "JumpReLU", "Kernel", "TopK", "kernel"]
