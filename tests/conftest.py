import atexit
import os
import shutil
import tempfile

# Silence TensorFlow's import-time log lines and keep runs deterministic enough for tests.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Keep the suite hermetic: no dataset files, tfds copies or render caches of the user's leak in, and
# nothing the tests render lands in the user's cache. Subprocesses started by tests inherit these.
_scratch = tempfile.mkdtemp(prefix="collapse-tui-tests-")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)
os.environ["COLLAPSE_TUI_DATA"] = ""
os.environ["COLLAPSE_TUI_CACHE"] = os.path.join(_scratch, "cache")
os.environ["TFDS_DATA_DIR"] = os.path.join(_scratch, "tensorflow_datasets")
# The console's width is the terminal's or $COLUMNS: a CI shell that sets COLUMNS must not change what the
# tests read (those about fitting a width set it themselves).
os.environ.pop("COLUMNS", None)
