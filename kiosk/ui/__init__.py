"""The kiosk screen: a local web app (idle/result screens, admin mode, guided enrolment) served by `kiosk run`."""
