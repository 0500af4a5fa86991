"""The whatsapp_cloud channel."""
