"""Help screen: what each screen shows and its keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# collapse-tui

Train a VAE on a ground-truth dataset, then sparse autoencoders on its representation at rising
sparsity, and watch neurons die while reconstruction stays good.

| key | where | what |
|---|---|---|
| F2 | anywhere | configure a run (form from the config schema) |
| F3 | anywhere | the runs table |
| F4 | anywhere | the run in progress |
| F1 / ? | anywhere | this help |
| ctrl+p | anywhere | command palette |
| ctrl+g | configure | start (refused while the form has errors) |
| ctrl+s | configure | save the form as YAML: asks where (your config directory by default, `~/.config/collapse-tui/`, whose files are presets at the next start) and before overwriting; the file becomes the form's preset |
| ctrl+o | configure | open the YAML file named in the open field at the form's end |
| PgDn / PgUp | configure | scroll the form, whatever has the focus (a field scrolled away hands the focus to one in sight) |
| ctrl+↓ / ctrl+↑ | configure | the next / previous part of the form (first fields, sweep, each section), unfolded, at its first field |
| enter on a section | configure | fold or unfold it (its title counts its fields, those not at the default, edited and in error) |
| s | run | stop, after asking what: the runs training now (a bank's stop together; each evaluated as it stands and kept *stopped*), or in a sweep, let them finish and start no more |
| t | run | next dead-neuron threshold |
| n | run | the neuron inspector: every neuron of the run's SAE (sortable table; `o` or a header click sorts), and the selected one's top-activating images, tuning curves and nearest decoder directions |
| [ / ] | run | the previous / next run of the sweep (the runs of a bank train at once) |
| 1 2 3 | run, compare | switch panel |
| e | run, compare | smooth the curves: EMA weight 0 → 0.6 → 0.9 → 0.97 (debiased, as TensorBoard's) |
| l | run, compare | log y axis |
| , / . | run, compare | cursor left / right: the last line of each chart reads every series' value there |
| + / - / 0 | run, compare | zoom the x axis in / out (around the cursor, else the newest values); 0 resets the view |
| enter | runs | open a run (a run still being written is followed) |
| space / c / p | runs | mark runs / compare the marked ones / plot them |
| / | runs | filter: words all of which must hold; `key<op>value` (`= != < <= > >=`) on a column (run, status, method, k/λ, dataset, sweep, date, remedy), a setting (`sae.k>=16`, `seed=0`, or its last part: `k=50`) or a metric as shown (`dead>30` in %, `l0`, `ev`, `mig`, `mse`, any metric's key); other words: text in any cell |
| o , click header | runs | sort (again: reverse); the line under the table says what the sorted column holds, hovering a column too |
| d | runs | delete a run (asks first) |
| u | runs | resume a stopped or crashed run from its last checkpoint |
| r | runs | read the runs dir again |
| g | runs | group the runs by sweep or by a setting that differs among them (a list to choose from); a group's row shows mean ± std of each metric over its runs; space (enter on a setting's group) folds it |
| w / enter on a sweep | runs | the sweep's results table: rows sortable by any column, enter opens a row's run (or compares its seeds) |
| p | sweep table | plot the sweep: any final metric against another or a setting (default dead % against L0), a series per method and remedy, mean ± std over seeds |
| a / b | plot | choose the x / y quantity |
| x / y | plot | log x / log y axis (refused where a value is ≤ 0) |
| P | sweep table, plot | each remedy against the plain SAE on the same seeds: per-seed Δ, mean, 95% interval, p; `m` picks the metric |
| a | compare | all config keys or only the differing ones |
| m / v / g | compare | export Markdown / CSV / SVG screenshot |
| escape | | back |
| ctrl+q | | quit |

**Panels.** *Loss*: VAE and SAE loss with the terms it sums (reconstruction, KL, sparsity), every few
steps (each point the mean over the steps since the one before) where a run recorded them, else per epoch. *Dead neurons*: the percentage of neurons that never
fire above the chosen threshold on the evaluation set (at each evaluation), and of those that fired on
no training input of an epoch (after every epoch), the histogram of log10 activation density of the
live ones, L0 and the current k or λ. *MIG*: mutual information gap of the VAE latents and of the SAE
codes, and the neuron × factor normalised mutual information, neurons sorted by their best factor,
dead neurons as grey dots.
"""


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(HELP)
