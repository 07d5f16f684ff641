"""The remedies for dead neurons an SAE can train with (each off by default)."""

from __future__ import annotations

from pydantic import Field

from collapse_tui.config.section import Section
from collapse_tui.config.vocabulary import AuxKCandidates


class RemediesConfig(Section):
    auxk: bool = Field(
        False, description="AuxK loss (Gao et al. 2024): the top auxk_k dead neurons reconstruct the residual.",
    )
    auxk_k: int | None = Field(
        None, ge=1, le=100_000,
        description="Dead neurons that take part in the AuxK loss; empty = half the SAE's input width.",
    )
    auxk_coefficient: float = Field(
        1 / 32, ge=0.0, le=100.0,
        description="Weight of the AuxK loss, whose error is scaled by Var(input) / Var(residual) as in OpenAI's code.",
    )
    auxk_candidates: AuxKCandidates = Field(
        "relu",
        description="What AuxK picks the dead neurons' k largest from: relu (Gao et al.: a neuron whose "
                    "pre-activation is never positive is never picked) or softplus (positive everywhere, so "
                    "the k largest pre-activations are picked even when negative, and get a gradient).",
    )
    dead_steps: int = Field(
        200, ge=1, le=10_000_000,
        description="Training steps without firing after which a neuron counts as dead (AuxK, ghost grads, resampling).",
    )
    resample_epochs: list[int] = Field(
        default_factory=list, max_length=1000,
        description="SAE epochs after which dead neurons are resampled toward badly reconstructed inputs "
                    "(Bricken et al. 2023); empty = never.",
    )
    ghost_grads: bool = Field(
        False,
        description="Ghost grads (Anthropic, 2024): the dead neurons' exp'd pre-activations, scaled to half the "
                    "residual's norm, reconstruct the residual, in a loss rescaled to equal the reconstruction's.",
    )
    tied_init: bool = Field(False, description="Encoder starts as the decoder transposed.")
    data_init: bool = Field(
        False,
        description="Decoder rows start as randomly drawn training inputs (centred, unit norm; the encoder as their "
                    "transpose) instead of random directions.",
    )
    project_decoder_grads: bool = Field(
        False,
        description="Each unit-norm decoder row's gradient loses its component along the row (steps tangent to the sphere).",
    )
    geometric_median_init: bool = Field(
        False, description="Pre-encoder bias b_dec starts at the geometric median of the inputs instead of their mean.",
    )
    bias_floor: float = Field(
        0.0, ge=0.0, lt=1.0,
        description="Bias floor (after loss-free load balancing, Wang et al. 2024, and group bias adaptation, Chen "
                    "et al. 2025): a neuron firing on less than this fraction of inputs (its running average) has "
                    "its encoder pre-activation raised by bias_step per update until it fires again; nothing is "
                    "lowered. Below the neurons' mean frequency, L0 / n_neurons. 0 = off (as every remedy by "
                    "default); e.g. 0.001, eval.revival_frequency.",
    )
    bias_step: float = Field(
        1e-3, gt=0.0, le=100.0,
        description="Bias floor: the raise per update, in the normalised input's pre-activation units. 0.001 is "
                    "Wang et al.'s u and about what Adam at the SAE's learning rate moves a bias per update: a "
                    "neuron whose largest pre-activation is -1 fires again after about 1,000 updates.",
    )
    bias_window: int = Field(
        100, ge=1, le=10_000_000,
        description="Bias floor: updates the running firing frequency averages over (weight 1/window). 100 updates "
                    "are 25,600 inputs at batch 256, an epoch or two of the data; a neuron firing again on twice "
                    "the floor or more stops being raised within a window.",
    )


# The remedies that are on/off switches, by their field names (a run's remedy label lists those it uses).
REMEDY_SWITCHES = ("auxk", "ghost_grads", "tied_init", "data_init", "project_decoder_grads", "geometric_median_init")
