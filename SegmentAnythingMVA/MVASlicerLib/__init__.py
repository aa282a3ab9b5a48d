"""Desktop-Slicer-only helpers (Qt layer): effect registration, dependency installation, settings."""
