"""The KPI pages: service figures, run charts, the annual report, `flask kpis`."""
