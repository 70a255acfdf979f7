"""Bulk CSV import and export of fracture episodes: the page and the `flask records` commands."""
