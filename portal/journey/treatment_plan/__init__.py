"""The treatment plan's pages (blueprint `treatment`); its logic is journey/treatment.py (the
schedule and the worklist) and journey/treatment_saving.py (the saves)."""
