"""Trusted time: kernel NTP, GPS and hub clocks, the floor, and clock anchors for later correction."""
