"""The operator's tools: backups and restores, the synthetic demo."""
