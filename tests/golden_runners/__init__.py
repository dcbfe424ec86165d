"""Per-kind runners for the golden cases: each maps (case, root) -> {tensor name: array} or None.

A runner returning None has made its own assertions (kinds without expected tensors).
"""
