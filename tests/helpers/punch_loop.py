"""Child process for the crash test: append punches forever, print each id once acknowledged."""

import sys
from pathlib import Path

from kiosk.config import load_config
from kiosk.store import open_store
from kiosk.store.punches import PunchDraft


def main() -> None:
    config = load_config(Path(sys.argv[1]))
    store = open_store(config)
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    while True:
        punch = store.punches.append(PunchDraft("E001", "card", "verified", score=0.5))
        # Printed only after append() returned, i.e. after the durable commit.
        out.write(punch.id + "\n")
        out.flush()


if __name__ == "__main__":
    main()
