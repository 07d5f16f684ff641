"""The TUI's own widgets: text line charts, histogram and heatmap."""
