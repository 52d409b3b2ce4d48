"""Branch attendance kiosk: on-device face recognition, card and GPS punches, encrypted store."""

__version__ = "0.1.0"
