"""The running kiosk: the daemon, its walk-up pipeline, systemd notifications."""
