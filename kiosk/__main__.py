"""Allow `python -m kiosk` as well as the `kiosk` console script."""

from kiosk.commands import main

main()
