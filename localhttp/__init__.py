"""What the local Functions host and the local doubles (the Twilio sandbox, the
Notification Hubs double) need alike to serve HTTP on a developer's machine: the
loopback ``Host`` guard, the RFC 9457 refusal, the own-pages-only rule of the
doubles' controls (``same_origin``) and their live feeds' fan-out (``broadcast``).

Development tooling only: never deployed, never imported by the app.
"""
