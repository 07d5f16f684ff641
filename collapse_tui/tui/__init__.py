"""The interactive terminal UI (Textual). ``run_app()`` starts it; the core never imports this package."""
