"""The reliability page names the tests that hold each promise: every test file it names must exist and
hold tests, so a renamed or deleted test cannot leave a promise that nothing checks."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reliability.md"


def test_every_test_file_the_reliability_page_names_exists_and_holds_tests():
    named = sorted(set(re.findall(r"`(tests/[\w/]+\.py)`", PAGE.read_text())))
    assert len(named) >= 20  # the page's tables, not an accident of the pattern
    missing = [name for name in named if not (ROOT / name).is_file()]
    assert missing == []
    empty = [name for name in named if "\ndef test_" not in (ROOT / name).read_text()]
    assert empty == []
