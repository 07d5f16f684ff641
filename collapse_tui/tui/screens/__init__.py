"""The TUI's screens: configure, run (live or followed), runs, compare, help."""
