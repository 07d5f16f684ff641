"""The SAE phase of a run: build the SAE from its settings, feed its trainer the run's data order and
sparsity schedule, apply its remedies between epochs, and evaluate it at the marks of its evaluation
schedule."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from collapse_tui.config import REMEDY_SWITCHES, RunConfig, sparsity_label
from collapse_tui.engine.seeding import derived_seed
from collapse_tui.events import Evaluation, Message, PhaseStarted
from collapse_tui.metrics.neurons import resolves_frequency
from collapse_tui.metrics.plateau import dead_change, dead_curve, dead_slope
from collapse_tui.metrics.specs import DEAD_CURVE
from collapse_tui.engine.checkpoint import Checkpoint, UnreadableCheckpoint, set_aside_checkpoint, weights_problem
from collapse_tui.engine.stability import StabilityMarks
from collapse_tui.store import SAE_FILE, dumps, save_model, write_neurons


def remedy_names(cfg: RunConfig) -> list[str]:
    """The dead-neuron remedies a run uses, by name ("auxk", "tied_init", "project_decoder_grads",
    "geometric_median_init", "resampling", "bias floor <floor>", input normalisation, "lr warm-up",
    "lr cosine decay" or "lr linear decay", "schedule delay <epochs>"); the method itself (batchtopk,
    jumprelu) is reported as the method."""
    r = cfg.sae.remedies
    names = [name for name in REMEDY_SWITCHES if getattr(r, name)]
    if r.resample_epochs:
        names.append("resampling")
    if r.bias_floor:  # with its floor: the remedy column is all that tells two floors' rows apart
        names.append(f"bias floor {r.bias_floor:g}")
    if cfg.sae.normalization != "none":
        names.append(cfg.sae.normalization)
    rate = cfg.sae.lr_schedule
    if rate.warmup_steps:
        names.append("lr warm-up")
    if rate.decay != "none":
        names.append(f"lr {rate.decay} decay")
    if cfg.sae.schedule.delay and cfg.sae.schedule.kind != "constant":  # a constant schedule has nothing to delay
        names.append(f"schedule delay {cfg.sae.schedule.delay}")
    return names


RNG_STATES = ("orders", "resample")  # the random states an SAE phase's checkpoint keeps


def _record(state: dict[str, Any]) -> dict[str, Any] | str:
    """The phase's record in a checkpoint, checked and typed (what :meth:`SAEPhase.checkpoint` wrote), or
    why it is not one."""
    try:
        history = [tuple(float(v) for v in h) for h in state.get("history") or []]
        if any(len(h) != 3 for h in history):
            return "its evaluation history is not (updates, sparsity, dead) triples"
        record = {"history": history,
                  "before_sparsification": dict(state.get("before_sparsification") or {}),
                  "before_extension": dict(state.get("before_extension") or {}),
                  "resampled": int(state.get("resampled") or 0),
                  "last_eval": state.get("last_eval"),
                  "last_eval_epoch": int(state.get("last_eval_epoch") or 0),
                  "coefficient": None if state.get("coefficient") is None else float(state["coefficient"])}
    except (TypeError, ValueError) as exc:
        return f"its record is damaged ({exc})"
    if record["last_eval"] is not None and not isinstance(record["last_eval"], dict):
        return "its last evaluation is not a record"
    return record


def result_flags(metrics: dict[str, Any], floor: float | None = 0.0) -> list[str]:
    """Why a final evaluation's metrics are not a result to report; empty when they are.

    An SAE that reconstructs its inputs no better than their mean (explained variance at or below 0, the
    default ``floor``) has learnt no dictionary: it trained far too briefly, or diverged (a learning rate
    far too large ends near -3e6) however "ok" its run ended. A non-finite explained variance is flagged
    whatever the floor; ``floor`` None flags nothing else.
    """
    ev = metrics.get("explained_variance")
    if ev is None:
        return []
    if not math.isfinite(ev):
        return [f"explained variance {ev}"]
    if floor is not None and ev <= floor:
        return [f"explained variance {ev:.3g} ≤ {floor:g}" + (": reconstructs no better than the inputs' mean"
                                                               if floor == 0 else "")]
    return []


def extension_report(before: dict[str, Any], after: dict[str, Any], revival_frequency: float = 1e-3
                     ) -> dict[str, Any]:
    """What extended training changed, from the evaluations before and after it: dead fraction and
    specialized neurons before, and how many neurons revived or died.

    A neuron *revived* if it was dead before (at the first threshold) and fires afterwards on at least
    ``revival_frequency`` of the evaluation inputs: one firing in thousands is flicker at the Top-k
    boundary, not a neuron that came back. *Newly dead*: live before, dead after (first threshold).
    """
    was, now = np.asarray(before["dead_mask"], bool), np.asarray(after["dead_mask"], bool)
    fires = np.asarray(after["fire_counts"], np.int64) / after["n_samples"]
    return {
        "dead_before_extension": before["dead_fraction"],
        "specialized_before_extension": before["specialized"],
        "revived": int(np.sum(was & (fires >= revival_frequency))),
        "newly_dead": int(np.sum(~was & now)),
    }


def evaluation_marks(total_epochs: int, every: int = 0, before_sparsification: bool = False,
                     before_extension: int | None = None) -> frozenset[int]:
    """The epochs (1-based) after which a run's SAE is evaluated:

    - every ``every`` epochs (0: none);
    - the first epoch, when the schedule sparsifies (the SAE is still nearly dense there: "before
      sparsification");
    - the end of the schedule, when extended epochs follow ("before extension").

    The last epoch is never a mark: the phase evaluates it itself, in full, once training ends.
    """
    marks = set(range(every, total_epochs + 1, every)) if every else set()
    if before_sparsification:
        marks.add(1)
    if before_extension:
        marks.add(before_extension)
    marks.discard(total_epochs)
    return frozenset(marks)


class SAEPhase:
    """One run's SAE: built from ``run.config.sae``, trained on the training codes (in a bank, with
    other runs' SAEs: :class:`~collapse_tui.engine.bank_phase.BankPhase`), measured on the evaluation
    codes (``codes``: the pair) and, at the end, through ``vae`` on ``data``'s images.

    ``run`` is the run in progress (``emit``, ``vae_metrics``); the phase records in it what it
    measures (``sae``, ``last_eval``, ``last_eval_epoch``, ``epochs_done``, ``updates_by_sparsity``,
    ``resampled``, ``sae_saved``). The trainer calls, in this order: :meth:`prepare` (then, if it
    :attr:`evaluates_first`, :meth:`evaluate` of the checkpoint's epoch); per epoch
    :meth:`order` and :meth:`sparsity_at` before it, :meth:`resample` then :meth:`checkpoint` then, if
    :meth:`evaluates_after` it, :meth:`evaluate` after it (with ``self.sae`` holding the trained
    weights); :meth:`finish` at the end.
    """

    def __init__(self, run, data, vae, codes: tuple[np.ndarray, np.ndarray], checkpoint: Checkpoint | None = None):
        from collapse_tui.nn import SparseAutoencoder, SparsitySchedule

        self.state, self.cfg = run, run.config
        self.data, self.vae = data, vae
        self.train_codes, self.eval_codes = codes
        c = self.cfg.sae
        self.schedule = SparsitySchedule.from_settings(c)
        # Under the target-L0 controller the schedule moves the target L0 (None without one).
        self.target_path = SparsitySchedule.target_path(c)
        moving = self.target_path or self.schedule
        # With a schedule, the first epoch is (nearly) dense: measured there, it is the "before
        # sparsification" the final evaluation is set against.
        self.sparsifies = c.schedule.kind != "constant" and moving.start != moving.end
        self.total_epochs = c.epochs + c.extended_epochs  # extended: further epochs at the final sparsity
        self.sae = SparseAutoencoder.from_settings(c, input_dim=self.train_codes.shape[1],
                                                   seed=derived_seed(self.cfg.seed, "sae"))
        self.steps_per_epoch = -(-len(self.train_codes) // c.batch_size)
        # The order the training codes are read in, a new permutation each epoch, from the run's seed:
        # the same whether the SAE trains alone or in a bank.
        self._orders = np.random.RandomState(derived_seed(self.cfg.seed, "sae-order"))
        self.evaluation_marks = evaluation_marks(self.total_epochs, every=self.cfg.eval.every,
                                                 before_sparsification=self.sparsifies,
                                                 before_extension=c.epochs if c.extended_epochs else None)
        self.resample_epochs = set(c.remedies.resample_epochs)
        self._resample_rng = np.random.RandomState(derived_seed(self.cfg.seed, "resample"))
        self.before_sparsification: dict[str, Any] = {}
        self.before_extension: dict[str, Any] = {}
        self.input_probe = None  # the probe of the factors from the SAE's input, made at the first evaluation
        self.input_stats = None  # the input's effective rank, likewise
        # The decoder at each mark, against the first (engine/stability.py), kept in the run directory.
        self.stability = StabilityMarks(self.state.run_dir, threshold=self.cfg.eval.thresholds[0],
                                        say=lambda text: self.state.emit(Message(text=text)))
        self.history: list[tuple[int, float, float]] = []  # (updates, sparsity, dead fraction) per evaluation
        # Resuming: training goes on after the checkpoint's epoch, with its weights, optimiser state,
        # random states and record (applied in prepare, once the SAE's input normalisation is set).
        if isinstance(checkpoint, UnreadableCheckpoint):
            self._start_over(checkpoint.reason)
            checkpoint = None
        self.resume_from = checkpoint
        self.start_epoch = checkpoint.epoch if checkpoint is not None else 0
        self.optimizer_state = checkpoint.optimizer if checkpoint is not None else None
        self.evaluation_missing = False  # resuming: the checkpoint's epoch's evaluation is still to be done
        if checkpoint is not None:  # checked now: a bank holds members of one start epoch
            problem = weights_problem(checkpoint, self.sae.get_weights(), self.total_epochs, RNG_STATES)
            self._resume_record = None if problem else _record(checkpoint.state)
            if problem or isinstance(self._resume_record, str):
                self._start_over(problem or self._resume_record)
            else:
                self.evaluation_missing = self._evaluation_missing(checkpoint.epoch, self._resume_record)

    # ------------------------------------------------------------------ training
    def prepare(self) -> None:
        """Set the SAE's normalisation (and ``b_dec``) from the training codes; announce the phase."""
        c, s = self.cfg.sae, self.state
        if c.remedies.resample_epochs and not isinstance(self.train_codes, np.ndarray):
            raise ValueError("sae.remedies.resample_epochs: resampling scores every training row at once, which "
                             "data.streaming leaves on disk; set data.streaming: never")
        self.sae.adapt(self.train_codes)
        if self.resume_from is not None:
            self._restore(self.resume_from, self._resume_record)
        s.sae = self.sae
        unresolved = [f for f in self.cfg.eval.density_thresholds
                      if not resolves_frequency(f, len(self.eval_codes))]
        if unresolved:  # said once, where the columns would have been
            s.emit(Message(text=f"eval: dead by firing frequency below {', '.join(f'{f:g}' for f in unresolved)} "
                                f"is not measured: {len(self.eval_codes):,} evaluation inputs cannot tell it "
                                f"from never firing (it needs more than {math.ceil(1 / max(unresolved)):,})"))
        s.emit(PhaseStarted(phase="sae", detail=f"training the SAE ({c.method}, {self.label()}, "
                            f"{c.n_neurons} neurons)", epochs=self.total_epochs,
                            steps_per_epoch=self.steps_per_epoch))

    def checkpoint(self, epochs_done: int, optimizer_state: dict[str, np.ndarray]) -> Checkpoint:
        """The phase after ``epochs_done`` epochs, with ``self.sae`` current and the optimiser's state of
        this SAE (see :mod:`~collapse_tui.engine.checkpoint`)."""
        record = {"history": self.history, "before_sparsification": self.before_sparsification,
                  "before_extension": self.before_extension, "resampled": self.state.resampled,
                  "last_eval": self.state.last_eval, "last_eval_epoch": self.state.last_eval_epoch,
                  "coefficient": float(self.sae.sparsity)}  # where the target-L0 controller has brought it
        return Checkpoint(epoch=epochs_done, weights=self.sae.get_weights(), optimizer=optimizer_state,
                          rng={"orders": self._orders.get_state(), "resample": self._resample_rng.get_state()},
                          state=json.loads(dumps(record)))

    def _evaluation_missing(self, epoch: int, record: dict[str, Any]) -> bool:
        """Whether the evaluation due after ``epoch`` (a mark's, or the final one after the last epoch) is
        not in a checkpoint's ``record``: an epoch's checkpoint is written before its evaluation, so that an
        evaluation that fails loses no training, and what the evaluation measures reaches the record only with
        the next epoch's checkpoint. A resumed run does that evaluation before it trains on."""
        due = epoch in self.evaluation_marks or epoch == self.total_epochs
        return due and record["last_eval_epoch"] != epoch

    @property
    def evaluates_first(self) -> bool:
        """Whether, resumed, the phase evaluates its checkpoint's epoch before it trains the next one (the
        final evaluation after the last epoch is :meth:`finish`'s)."""
        return self.evaluation_missing and self.start_epoch < self.total_epochs

    def _start_over(self, problem: str) -> None:
        """A checkpoint that cannot continue this SAE: set aside (kept to look at) and the SAE phase run from
        its start, as for a run that had none, rather than a run that fails and can never be resumed."""
        where = set_aside_checkpoint(self.state.run_dir)
        self.state.emit(Message(text=f"sae: the checkpoint cannot be resumed ({problem}); set aside as "
                                     f"{where.name if where else 'nothing'}, the SAE trains from the start",
                                level="warning"))
        self.resume_from, self.start_epoch, self.optimizer_state = None, 0, None
        self.evaluation_missing = False

    def _restore(self, checkpoint: Checkpoint, record: dict[str, Any]) -> None:
        self.sae.set_weights(checkpoint.weights)
        self._orders.set_state(checkpoint.rng["orders"])
        self._resample_rng.set_state(checkpoint.rng["resample"])
        self.history = record["history"]
        self.before_sparsification = record["before_sparsification"]
        self.before_extension = record["before_extension"]
        self.state.resampled = record["resampled"]
        self.state.last_eval = record["last_eval"]
        self.state.last_eval_epoch = record["last_eval_epoch"]
        if self.cfg.sae.target_l0 and record["coefficient"] is not None:
            self.sae.set_sparsity(record["coefficient"])
        else:
            self.sae.set_sparsity(self.schedule.value(max(0, checkpoint.epoch - 1)))
        # The marks up to the last evaluation the record holds: one a failed evaluation wrote is taken again.
        self.stability.restore(checkpoint.epoch - 1 if self.evaluation_missing else checkpoint.epoch,
                               lambda text: self.state.emit(Message(text=text)))
        self.state.emit(Message(text=f"sae: resumed from the checkpoint after epoch {checkpoint.epoch}"))

    def order(self) -> np.ndarray:
        """The next epoch's order of the training codes."""
        return self._orders.permutation(len(self.train_codes))

    def sparsity_at(self, epoch: int) -> int | float:
        """The schedule's k or coefficient for ``epoch`` (0-based)."""
        return self.schedule.value(epoch)

    def target_at(self, epoch: int) -> float:
        """The target-L0 controller's target for ``epoch`` (0-based); 0 without the controller."""
        return 0.0 if self.target_path is None else float(self.target_path.value(epoch))

    def acts_after(self, epoch: int) -> bool:
        """Whether anything follows ``epoch`` (0-based): resampling or evaluating."""
        return self.resamples_after(epoch) or self.evaluates_after(epoch)

    def resamples_after(self, epoch: int) -> bool:
        return epoch + 1 in self.resample_epochs

    def evaluates_after(self, epoch: int) -> bool:
        return epoch + 1 in self.evaluation_marks

    def resample(self, epoch: int, bank=None, member: int | None = None) -> None:
        """After ``epoch`` (0-based) with ``self.sae`` current, if it is one of the remedy's epochs:
        resample dead neurons, then copy the SAE back into ``bank``'s ``member``. Before the epoch's
        evaluation, which measures the resampled model."""
        if not self.resamples_after(epoch):
            return
        from collapse_tui.nn import resample_dead_neurons

        indices = resample_dead_neurons(self.sae, self.train_codes, self._resample_rng)
        if bank is not None:
            bank.read_member(member, self.sae)
            bank.reset_optimizer_state(member, indices)
        self.state.resampled += len(indices)
        self.state.emit(Message(text=f"sae: resampled {len(indices)} dead neurons after epoch {epoch + 1}"))

    def finish(self, epochs_done: int, outputs: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """After training (ended or stopped) with ``self.sae`` current: the final evaluation, in full
        (``outputs`` as :meth:`evaluate` takes them), and ``sae.keras``. What was measured stays, even
        when stopped. The trainer has checkpointed the last epoch before this: should the evaluation fail
        (out of memory on a large dictionary, say), the run keeps its training and a resume only evaluates."""
        s = self.state
        s.epochs_done = epochs_done
        s.updates_by_sparsity = self.updates_by_sparsity(epochs_done)
        if epochs_done > 0:
            with s.phase("evaluate"):
                s.emit(PhaseStarted(phase="evaluate", detail="final evaluation"))
                self.evaluate(epochs_done, final=True, outputs=outputs)
        save_model(self.sae, s.run_dir / SAE_FILE)
        s.sae_saved = True

    def updates_by_sparsity(self, epochs: int) -> dict[str, int]:
        """Optimiser updates spent at each sparsity (k or λ, as text) over the first ``epochs`` epochs:
        the schedule's value of each epoch × the steps of an epoch (an epoch cut short by a stop is
        not counted)."""
        spent: dict[str, int] = {}
        for epoch in range(epochs):
            key = f"{self.schedule.value(epoch):g}"
            spent[key] = spent.get(key, 0) + self.steps_per_epoch
        return spent

    def label(self) -> str:
        """The SAE's sparsity and remedies in words, for the phase's title."""
        c = self.cfg.sae
        label = sparsity_label(c.method, self.cfg.sparsity)
        remedies = remedy_names(self.cfg)
        if remedies:
            label += ", " + " + ".join(remedies)
        if c.extended_epochs:
            label += f", then {c.extended_epochs} extended epochs"
        return label

    # ------------------------------------------------------------------ evaluation
    def _write_neurons(self, metrics: dict[str, Any], acts: np.ndarray) -> None:
        """The final evaluation's per-neuron profiles, for the neuron inspector (``store.write_neurons``),
        from the codes ``acts`` it measured."""
        import keras

        from collapse_tui.metrics import decoder_neighbours, neuron_profiles

        profiles = neuron_profiles(acts, self.data.eval_factors)
        neighbours, cosines = decoder_neighbours(keras.ops.convert_to_numpy(self.sae.W_dec))
        arrays = {key: profiles[key] for key in ("frequency", "max_activation", "mean_activation",
                                                 "top_examples", "top_values")}
        for name, tuning, values in zip(self.data.factor_names, profiles["tuning"], profiles["tuning_values"]):
            arrays[f"tuning/{name}"], arrays[f"tuning_values/{name}"] = tuning, values
        arrays.update(factors=np.asarray(self.data.factor_names, dtype=str), eval_indices=self.data.eval_indices,
                      nmi=np.asarray(metrics["nmi"], dtype=np.float32),
                      best_factor=np.asarray(metrics["best_factor"], dtype=np.int64),
                      dead=np.asarray(metrics["dead_mask"], dtype=bool), neighbours=neighbours,
                      neighbour_cosines=cosines)
        # Where a neuron is the best single detector of a factor's value (the evaluation's AUROC), its
        # best such value; single-valued factors (AUROC 0.5 throughout) are left out.
        m = len(arrays["frequency"])
        auroc, auroc_factor, auroc_value = np.full(m, np.nan, np.float32), np.full(m, -1, np.int32), np.full(m, -1, np.int32)
        for j, (best, neuron) in enumerate(zip(metrics["auroc_best_per_value"], metrics["auroc_best_neuron"])):
            values = profiles["tuning_values"][j]  # sorted, as the AUROC's values are
            for k, (a, i) in enumerate(zip(best, neuron)):
                if len(values) > 1 and not a <= auroc[i]:  # the first, or a higher one (NaN compares False)
                    auroc[i], auroc_factor[i], auroc_value[i] = a, j, values[k]
        arrays.update(auroc=auroc, auroc_factor=auroc_factor, auroc_value=auroc_value)
        write_neurons(self.state.run_dir, arrays)

    def evaluate(self, epoch: int, final: bool = False,
                 outputs: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
        """Measure the SAE after ``epoch``; the final evaluation also decodes the evaluation images
        through the VAE (the costly part) and adds what the marks recorded before it. ``outputs``: the
        SAE's codes and reconstruction of the evaluation codes, when the caller has them (a bank computes
        all its members' in one pass); else the SAE computes them."""
        from collapse_tui.engine.evaluation import evaluate_sae, input_metrics
        from collapse_tui.metrics import linear_probe

        cfg, s = self.cfg, self.state
        if self.input_stats is None:  # the SAE's input does not change during the run: measure it once
            factors = self.data.eval_factors
            self.input_probe = None if factors is None else linear_probe(self.eval_codes, factors)
            self.input_stats = input_metrics(self.eval_codes)
        # The codes are measured here, and profiled per neuron after the final evaluation.
        acts, recon = outputs if outputs is not None else (self.sae.codes(self.eval_codes), None)
        metrics = evaluate_sae(self.sae, self.eval_codes, self.data.eval_factors, cfg.eval, vae=self.vae,
                               source=cfg.sae.source, eval_images=self.data.eval_images if final else None,
                               input_probe=self.input_probe, acts=acts, recon=recon, final=final,
                               inputs=self.input_stats)
        metrics["sparsity"] = float(self.sae.sparsity)
        metrics["updates"] = epoch * self.steps_per_epoch  # the x axis of dead neurons against training
        metrics["mig_vae"] = s.vae_metrics.get("mig")
        metrics.update(self.stability.measure(epoch, metrics["updates"], self.sae.decoder_directions(), acts))
        # A coefficient under the target-L0 controller moves all along: for the plateau statistics its run
        # is at the target of the epoch just trained, final once the target path has ended.
        path = self.target_path
        at = metrics["sparsity"] if path is None else self.target_at(max(0, epoch - 1))
        self.history.append((metrics["updates"], at, metrics["dead_fraction"]))
        if final:  # has the dead fraction stopped changing? (metrics/plateau.py)
            end = float((path or self.schedule).end)
            metrics["dead_change_last_20pct"] = dead_change(self.history, end)
            slope, marks = dead_slope(self.history, end)
            metrics["dead_slope_per_efold"] = slope  # fraction per e-fold of updates (specs: pp)
            metrics["dead_slope_marks"] = marks
            metrics[DEAD_CURVE] = dead_curve(self.history)
        if self.sparsifies and epoch == 1 and not final:
            self.before_sparsification.update(metrics)
        if cfg.sae.extended_epochs and epoch == cfg.sae.epochs:
            self.before_extension.update(metrics)
        elif final and self.before_extension:
            metrics.update(extension_report(self.before_extension, metrics, cfg.eval.revival_frequency))
        if final and self.before_sparsification:
            metrics["dead_before_sparsification"] = self.before_sparsification["dead_fraction"]
            if "specialized" in self.before_sparsification:  # measured against factors (a file may have none)
                metrics["specialized_before_sparsification"] = self.before_sparsification["specialized"]
        if final and self.data.eval_factors is not None:  # the profiles are tuning curves over the factors
            self._write_neurons(metrics, acts)
        elif final:
            s.emit(Message(text="neurons: no per-neuron profiles: the activations file has no factors to tune to"))
        s.last_eval = metrics
        s.last_eval_epoch = epoch
        s.emit(Evaluation(phase="sae", epoch=epoch, metrics=metrics))
        return metrics
