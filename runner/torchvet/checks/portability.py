"""portability.* checks (see DESIGN.md §3)."""
