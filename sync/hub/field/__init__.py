"""Field staff punch from their phone: pairing (a WebAuthn passkey), the /field/ page, the punch itself."""
