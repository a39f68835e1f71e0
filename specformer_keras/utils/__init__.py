"""Small shared helpers: argument validation (`validation`) and atomic file writes (`io`)."""
