"""Spec to files: the pure render plan, and the three-way merge that writes it without losing edits."""
