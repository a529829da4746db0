"""What the local Functions host and the Twilio sandbox both need to serve HTTP on a
developer's machine: the loopback ``Host`` guard and the RFC 9457 refusal.

Development tooling only: never deployed, never imported by the app.
"""
