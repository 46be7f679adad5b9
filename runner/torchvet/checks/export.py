"""export.* checks (see DESIGN.md §3)."""
