"""Records in and out: CSV reading, imports (check, apply, jobs) and exports."""
