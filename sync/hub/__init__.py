"""The reference hub: receives punches, serves rosters, and is HR's side of the system."""
