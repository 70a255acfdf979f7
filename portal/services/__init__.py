"""What the portal does: validate -> authorise -> change -> audit. Operations flush; the
request (or CLI command) commits once."""
