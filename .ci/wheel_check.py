"""Run by the Python of a fresh virtual environment that has only the built wheel installed, from a
directory outside the checkout: the terminal UI must open with its stylesheet and offer the shipped
presets, as a user of ``pip install collapse-tui`` sees it. Exits non-zero naming what is missing."""

import asyncio
import sys
from pathlib import Path


async def check() -> list[str]:
    import collapse_tui
    from collapse_tui.tui.app import CollapseApp
    from collapse_tui.tui.screens.configure import ConfigureScreen

    problems = []
    if "site-packages" not in Path(collapse_tui.__file__).parts:
        problems.append(f"collapse_tui was imported from {collapse_tui.__file__}, not from the installed wheel")
    app = CollapseApp(environment_label="wheel check")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        if not isinstance(app.screen, ConfigureScreen):
            problems.append(f"the UI opened on {type(app.screen).__name__}, not the configure form")
        if "quick.yaml" not in app.presets:
            problems.append(f"the form offers no quick preset: {sorted(app.presets)}")
        elif app.screen.query_one("#preset").value != "quick.yaml":
            problems.append("the form did not load the quick preset")
        if not app.stylesheet.rules:
            problems.append("the stylesheet was not loaded")
    return problems


if __name__ == "__main__":
    found = asyncio.run(check())
    for problem in found:
        print(f"wheel check: {problem}", file=sys.stderr)
    if not found:
        print("wheel check: the UI opens with its stylesheet on the quick preset")
    sys.exit(1 if found else 0)
