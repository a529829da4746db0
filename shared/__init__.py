"""Helpers shared by every function: settings, requests, policy, Twilio, responses.

Function folders import the modules they need directly (``from shared.settings
import app_settings``) so that a function pays only for what it uses at cold
start: ``twiml`` never imports ``shared.twilio_client`` (and with it
``twilio.rest``).
"""
