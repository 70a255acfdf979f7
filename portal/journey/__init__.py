"""Patient journey data entry: find or register, episode stages, worklists, history."""
