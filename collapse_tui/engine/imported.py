"""An SAE trained elsewhere (SAELens, sparsify: :mod:`collapse_tui.store.saelens`) measured as a run: its
config made the SAE's own, then one final evaluation on the run's data, with nothing trained."""

from __future__ import annotations

from collapse_tui.config import K_METHODS, RunConfig
from collapse_tui.events import Message, PhaseStarted
from collapse_tui.store import SAE_FILE, save_model


def imported_config(config: RunConfig, sae) -> RunConfig:
    """``config`` with its SAE section describing ``sae``: its method, dictionary size and (k-sparse) k,
    no input normalisation (an imported SAE reads raw inputs), a constant schedule."""
    update = {"method": sae.method, "n_neurons": int(sae.n_neurons), "normalization": "none",
              "schedule": config.sae.schedule.model_copy(update={"kind": "constant", "start": None})}
    if sae.method in K_METHODS:
        update["k"] = int(sae.k)
    return config.model_copy(update={"sae": config.sae.model_copy(update=update)})


def measure_imported(phase, sae, source: str) -> None:
    """Put ``sae`` in ``phase`` (an :class:`~collapse_tui.engine.sae_phase.SAEPhase` ready to train) and
    measure it once, as the final evaluation; ValueError when the data's inputs are not the SAE's size."""
    s = phase.state
    width = phase.eval_codes.shape[1]
    if width != sae.input_dim:
        raise ValueError(f"the SAE from {source} reads {sae.input_dim} inputs; the data has {width} per row")
    phase.sae = sae
    s.sae = sae
    s.emit(Message(text=f"sae: imported from {source} ({sae.method}, {sae.n_neurons} neurons): not trained here, "
                        "measured as it is"))
    with s.phase("evaluate"):
        s.emit(PhaseStarted(phase="evaluate", detail="evaluation of the imported SAE"))
        phase.evaluate(0, final=True)
    save_model(sae, s.run_dir / SAE_FILE)
    s.sae_saved = True
