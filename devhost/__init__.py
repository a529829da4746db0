"""Local development tooling: a Functions host for the app and a Twilio sandbox."""
