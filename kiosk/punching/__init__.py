"""Who gets a punch and how: the punch policy and the one function that records a punch."""
