"""Training the SAEs of several runs as one bank (:class:`~collapse_tui.nn.sae_bank.SAEBank`): one
optimiser step for all per batch, each run's SAE still fed, scheduled, remedied, evaluated and saved as
its own run (:class:`~collapse_tui.engine.sae_phase.SAEPhase`)."""

from __future__ import annotations

import contextlib
import threading
import traceback
from typing import Any, Callable, Sequence

import keras
import numpy as np

from collapse_tui.engine.callbacks import IntervalMeans, StopRequested, StoppableCallback, running_metrics
from collapse_tui.engine.checkpoint import write_checkpoint
from collapse_tui.engine.distribution import data_parallel_scope, outside_distribution
from collapse_tui.engine.sae_phase import SAEPhase
from collapse_tui.engine.torch_bank import prepare_bank
from collapse_tui.engine.torch_compile import torch_compile_setting
from collapse_tui.events import EpochEnd, Message, Progress
from collapse_tui.interrupts import stop_polled
from collapse_tui.metrics.specs import DEAD_IN_TRAINING


# Under torch, a bank planned for at least this many member updates (steps x members) compiles its step
# with torch.compile. Measured by `KERAS_BACKEND=torch python benchmarks/sweep_throughput.py --torch-compile`
# (16 Top-k SAEs of 256 -> 500, two CPU cores, medians of 3 rounds): a compile takes about 6 s per bank
# once inductor's cache on disk holds its kernels (about 30 s the first time on a machine); compiled, the
# SAEs one after another trained at 357 against 292 updates/s at batch 16 and 201 against 196 at 128, as
# one bank of 16 at 1,065 against 561 and 364 against 322. At 50,000 updates the compile saves a lone SAE
# at batch 16 about 31 s for its 6, a bank of 16 about 42 s; at batch 128 a lone SAE breaks even.
TORCH_COMPILE_MIN_UPDATES = 50_000
def torch_compiles(planned_updates: int) -> bool:
    """Whether a bank planned for ``planned_updates`` member updates (its steps times its members) has its
    step compiled (torch.compile) under torch; False on the other backends, which compile with XLA
    anyway. :data:`~collapse_tui.engine.torch_compile.TORCH_COMPILE_VARIABLE` set to ``on`` or ``off`` decides instead of
    :data:`TORCH_COMPILE_MIN_UPDATES`."""
    setting = torch_compile_setting()
    if keras.backend.backend() != "torch":
        return False
    if setting == "auto":
        return planned_updates >= TORCH_COMPILE_MIN_UPDATES
    return setting == "on"


class _MemberEvents(StoppableCallback):
    """Drives the members through ``fit``: before each epoch their data orders and sparsities, during it
    progress and the stop check, after it each member's epoch event, divergence check, remedies and
    evaluation; training ends early once no member is left."""

    def __init__(self, phase: "BankPhase"):
        super().__init__(phase.stop_event)
        self.phase = phase

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.phase.before_epoch(epoch)

    def progress(self, epoch: int, batch: int) -> None:
        self.phase.progress(epoch, batch)

    def on_epoch_end(self, epoch, logs=None):
        # A stop during the epoch's steps cut it short: it is reported and evaluated, never checkpointed
        # (a resumed run redoes it whole from the checkpoint before it). The members are evaluated and
        # resampled as standalone SAEs, on one device: outside the bank's distribution, if it has one.
        with outside_distribution():
            self.phase.after_epoch(epoch, logs or {}, self.epoch_seconds(), complete=not self.stopped)
        if not self.stop_requested() and not self.phase.live:
            self.model.stop_training = True


class BankPhase:
    """The SAE phases of runs that share a :func:`~collapse_tui.engine.banks.bank_key` and the SAE's shape, trained as one bank.

    A member whose loss stops being finite, or whose evaluation or remedy raises, fails alone
    (``on_failed(member, reason, traceback)``); the others train on. A stop (the event, or Ctrl-C
    between epochs) stops all: each member is evaluated and saved as it is, then
    :class:`StopRequested` is raised.
    """

    def __init__(self, members: Sequence[SAEPhase], stop_event: threading.Event,
                 on_failed: Callable[[SAEPhase, str, str], None]):
        self.members = list(members)
        self.stop_event = stop_event
        self.on_failed = on_failed
        first = self.members[0].cfg.sae
        self.batch_size, self.learning_rate = first.batch_size, first.learning_rate
        self.data_parallel = self.members[0].cfg.data_parallel  # shared: it is part of bank_key
        self.total_epochs = self.members[0].total_epochs
        self.steps_per_epoch = self.members[0].steps_per_epoch
        self.failed: set[int] = set()
        self.bank = None
        self._steps = IntervalMeans()  # the members' per-step curves, sent with the progress events

    @property
    def live(self) -> list[int]:
        """Indices of the members still training."""
        return [i for i in range(len(self.members)) if i not in self.failed]

    def _fail(self, i: int, reason: str, trace: str = "") -> None:
        self.failed.add(i)
        self.on_failed(self.members[i], reason, trace)

    def _each(self, what: Callable[[int, SAEPhase], None], which: Sequence[int] | None = None) -> None:
        """``what`` for every live member (of ``which``, if given); one that raises fails that member only."""
        for i in self.live if which is None else [i for i in which if i not in self.failed]:
            try:
                what(i, self.members[i])
            except (KeyboardInterrupt, StopRequested):
                raise
            except Exception as exc:
                if self.stop_event.is_set():  # the stop's signal, wrapped by the framework it landed in
                    raise StopRequested() from exc
                self._fail(i, f"{type(exc).__name__}: {exc}", traceback.format_exc())

    # ------------------------------------------------------------------ training
    def run(self) -> None:
        from collapse_tui.nn.lr_schedule import WarmupDecay
        from collapse_tui.nn.sae_bank import SAEBank

        self._each(lambda i, m: m.prepare())
        if not self.live:
            return
        members = [self.members[i] for i in self.live]
        self.index = {i: j for j, i in enumerate(self.live)}  # member -> its slice of the bank
        # The bank's variables are laid out on the devices as they are created: construction, compile and
        # fit all run under the distribution (the members' own SAEs, built before, stay on one device).
        with data_parallel_scope(self.data_parallel):
            self.bank = SAEBank([m.sae for m in members], [m.train_codes for m in members])
            # Resumed members (one bank holds members of one checkpoint epoch) bring the optimiser's state.
            start = self.members[self.live[0]].start_epoch
            planned = (self.total_epochs - start) * self.steps_per_epoch * len(members)
            options = {"jit_compile": True} if torch_compiles(planned) else {}
            settings = self.members[self.live[0]].cfg.sae  # the bank's members share it (bank_key)
            rate = WarmupDecay.from_settings(settings, self.steps_per_epoch, self.total_epochs)
            optimizer = keras.optimizers.Adam(self.learning_rate if rate.is_constant else rate,
                                              beta_1=settings.adam_beta1)
            self.bank.compile(optimizer=optimizer, **options)
            prepare_bank(self.bank)
            self.bank.set_optimizer_states({self.index[i]: self.members[i].optimizer_state for i in self.live
                                            if self.members[i].optimizer_state is not None})
            # Resumed from a checkpoint written before its epoch's evaluation: that evaluation first.
            with outside_distribution():
                self._with_outputs([i for i in self.live if self.members[i].evaluates_first],
                                   lambda i, m, outputs: m.evaluate(start, outputs=outputs))
            if not self.live:
                return
            callback = _MemberEvents(self)
            if start < self.total_epochs:  # else resumed after the last epoch: only the final evaluation is left
                with stop_polled():  # the callback stops fit between steps; a signal inside only asks it to
                    self.bank.fit(**self._training_data(), epochs=self.total_epochs, verbose=0, callbacks=[callback],
                                  initial_epoch=start)
        history = self.bank.history if start < self.total_epochs else None  # fit's, when it ran
        epochs_done = start + (len(history.history.get("loss", [])) if history else 0)

        def finish(i, m, outputs=None):
            self.bank.write_member(self.index[i], m.sae)
            m.finish(epochs_done, outputs)

        if epochs_done > 0:  # the final evaluation
            self._with_outputs(self.live, finish)
        else:
            self._each(finish)
        if callback.stopped:
            raise StopRequested()

    def _training_data(self) -> dict:
        """What ``fit`` reads: the positions of the rows the bank holds, or the batches of rows read from a
        file as training uses them (a streamed bank)."""
        if self.bank.streamed:
            from collapse_tui.nn.streamed_batches import StreamedBatches

            return {"x": StreamedBatches(self.bank.streamed, lambda: self.bank.host_orders, self.batch_size),
                    "shuffle": False}  # the batches in order: the members' orders already shuffle their rows
        return {"x": np.arange(self.bank.n_rows, dtype=np.int32), "batch_size": self.batch_size, "shuffle": False}

    def write_back(self) -> None:
        """Copy the bank's current weights into every live member's SAE (after an interruption)."""
        if self.bank is None:
            return
        for i in self.live:
            with contextlib.suppress(Exception):
                self.bank.write_member(self.index[i], self.members[i].sae)

    # ------------------------------------------------------------------ callbacks
    def before_epoch(self, epoch: int) -> None:
        orders, sparsities = [], []
        reached = self.bank.sparsities
        for i in self.index:
            m = self.members[i]
            orders.append(m.order())
            # A failed member keeps training in its slice (nothing mixes members) but no longer matters.
            # Under the target-L0 controller the coefficient is where training brought it, not a schedule's.
            sparsities.append(reached[self.index[i]] if m.cfg.sae.target_l0 else m.sparsity_at(epoch))
        self.bank.set_orders(orders)
        self.bank.set_sparsities(sparsities)
        if any(self.bank.controlled):
            self.bank.set_target_l0s([self.members[i].target_at(epoch) for i in self.index])

    def progress(self, epoch: int, batch: int) -> None:
        done = epoch * self.steps_per_epoch + batch
        total = self.total_epochs * self.steps_per_epoch
        steps, means = {}, {}
        if batch > 0:
            means = running_metrics(self.bank)
            steps = self._steps.update(epoch, batch, {k: v for k, v in means.items() if v.ndim == 1})
        for i in self.live:
            logs = self._member_logs(steps, i)
            self.members[i].state.emit(Progress(phase="sae", done=done, total=total, epoch=epoch + 1,
                                                logs=logs or None))
        if batch > 0:
            self._check_finite(epoch, batch, means.get("loss"))

    def _member_logs(self, values: dict[str, np.ndarray], i: int) -> dict[str, float]:
        """Member ``i``'s value of each of the bank's per-member metrics (AuxK's only if it uses AuxK:
        the bank computes them for every member when any does)."""
        j, auxk = self.index[i], self.members[i].sae.auxk
        return {key: float(v[j]) for key, v in values.items() if key not in ("auxk_loss", "auxk_dead") or auxk}

    def _check_finite(self, epoch: int, batch: int, losses: np.ndarray | None) -> None:
        """Fail, at once, each member whose running loss this epoch is no longer finite: nothing it would
        measure from here on means anything. Its slice keeps training (nothing mixes members)."""
        if losses is None:
            return
        for i in self.live:
            loss = float(losses[self.index[i]])
            if not np.isfinite(loss):
                self._fail(i, f"training diverged: the SAE's loss became {loss} in epoch {epoch + 1} "
                              f"(found at step {batch})")
        if not self.live:
            self.bank.stop_training = True

    def after_epoch(self, epoch: int, logs: dict[str, Any], seconds: float, complete: bool = True) -> None:
        # The bank's logs are vectors, one value per member, as backend tensors (on the device under torch).
        arrays = {key: np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64) for key, value in logs.items()}
        values = {key: array for key, array in arrays.items() if array.ndim == 1}
        sparsities = self.bank.sparsities
        # Dead over the epoch, for every member at no cost: the step counts each neuron's idle streak, so
        # one idle for the epoch's every step fired on none of its training inputs (the evaluation's dead
        # fraction, on held-out inputs, comes only at the marks).
        idle = np.asarray(keras.ops.convert_to_numpy(self.bank.idle_steps))
        dead_in_training = (idle >= self.steps_per_epoch).mean(axis=1) if complete else None
        # The epoch's last steps close each member's per-step curve (see EventCallback.on_epoch_end).
        tail = self._steps.update(epoch, self.steps_per_epoch, values) if complete else {}
        done, total = (epoch + 1) * self.steps_per_epoch, self.total_epochs * self.steps_per_epoch

        def report(i, m):
            j = self.index[i]
            member_logs = self._member_logs(values, i)
            if dead_in_training is not None:
                member_logs[DEAD_IN_TRAINING] = float(dead_in_training[j])
            if tail:
                m.state.emit(Progress(phase="sae", done=done, total=total, epoch=epoch + 1,
                                      logs=self._member_logs(tail, i)))
            m.state.emit(EpochEnd(phase="sae", epoch=epoch + 1, epochs=self.total_epochs, logs=member_logs,
                                  seconds=seconds, sparsity=float(sparsities[j])))
            loss = member_logs.get("loss")
            if loss is not None and not np.isfinite(loss):
                raise FloatingPointError(f"training diverged: the SAE's loss is {loss} after epoch {epoch + 1}")

        self._each(report)
        # Only the members that resample or evaluate after this epoch need their weights on the host.
        busy = [i for i in self.live if self.members[i].acts_after(epoch)]
        self.bank.write_members({self.index[i]: self.members[i].sae for i in busy})
        # Resampling first: an epoch's evaluation measures the resampled model (copied back into the bank).
        self._each(lambda i, m: m.resample(epoch, self.bank, self.index[i]),
                   [i for i in busy if self.members[i].resamples_after(epoch)])
        # The checkpoint before the evaluation: an evaluation that fails (out of memory on a large
        # dictionary) loses no training, and a resumed run evaluates that epoch before it trains on.
        if complete:
            self._checkpoint(epoch + 1, current=busy)
        self._with_outputs([i for i in busy if self.members[i].evaluates_after(epoch)],
                           lambda i, m, outputs: m.evaluate(epoch + 1, outputs=outputs))

    def _with_outputs(self, members: Sequence[int], what: Callable[[int, SAEPhase, tuple | None], None]) -> None:
        """``what(i, member, (codes, reconstruction))`` for each live one of ``members``, with its SAE's
        outputs on its evaluation codes computed for all of them by the bank at once
        (:meth:`SAEBank.member_outputs <collapse_tui.nn.sae_bank.SAEBank.member_outputs>`); each is
        evaluated as it comes, and a member whose evaluation raises fails alone. Should the bank's pass
        itself raise (out of memory, say), each member it had not yet given outputs is told so and
        evaluated with ``None``: by its own SAE, alone."""
        members = [i for i in members if i not in self.failed]
        member_of = {self.index[i]: i for i in members}
        waiting = list(members)
        try:
            for j, codes, reconstruction in self.bank.member_outputs(
                    {self.index[i]: self.members[i].eval_codes for i in members}):
                i = member_of[j]
                waiting.remove(i)
                self._each(lambda i, m: what(i, m, (codes, reconstruction)), [i])
        except (KeyboardInterrupt, StopRequested):
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            for i in waiting:
                self.members[i].state.emit(Message(text=f"sae: the bank's evaluation pass failed ({reason}); "
                                                        f"evaluating this SAE alone"))
            self._each(lambda i, m: what(i, m, None), waiting)

    def _checkpoint(self, epochs_done: int, current: Sequence[int] = ()) -> None:
        """Every live member's state after ``epochs_done`` epochs, into its run directory: what it needs to
        go on from here if the process dies or the epoch's evaluation fails (its weights are copied out of
        the bank first; the members in ``current``, which resample or evaluate after this epoch, have them
        already). After the last epoch too: the final evaluation follows, and a run that finishes deletes
        the checkpoint (its ``sae.keras`` is the final state)."""
        live = self.live
        self.bank.write_members({self.index[i]: self.members[i].sae for i in live if i not in current})
        states = self.bank.optimizer_states([self.index[i] for i in live])
        self._each(lambda i, m: write_checkpoint(m.state.run_dir, m.checkpoint(epochs_done, states[self.index[i]])))
