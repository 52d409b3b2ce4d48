"""Enrolment workflows: photo checks (photos.py); guided capture and bulk import build on them."""
