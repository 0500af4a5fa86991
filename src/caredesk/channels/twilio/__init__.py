"""The twilio channel."""
