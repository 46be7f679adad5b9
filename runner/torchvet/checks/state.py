"""state.* checks (see DESIGN.md §3)."""
