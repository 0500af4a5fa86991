"""Channel adapters: every way customers reach the business lands in one inbox, one contact, one timeline.

`install(services)` is called by `caredesk.app`: it registers each channel's sender in
`services.senders` (by Inbox.channel) and the channels' job handlers (the download of provider media into
storage: caredesk.channels.media), and the accounts' outbound webhooks (caredesk.channels.webhooks). Web chat needs no sender
(the customer's stream is the delivery).
"""

from __future__ import annotations

from typing import Any


def install(services: Any) -> None:
    from caredesk.channels.api.sender import ApiSender
    from caredesk.channels.base import MEDIA_JOB, CallbackUrls, redact_http_logs
    from caredesk.channels.email.imap import imap_poll_job
    from caredesk.channels.email.sender import EmailSender
    from caredesk.channels.media import media_job
    from caredesk.channels.messenger.sender import MessengerSender
    from caredesk.channels.telegram.sender import TelegramSender
    from caredesk.channels.twilio.sender import TwilioSender
    from caredesk.channels.webhooks import install as install_webhooks
    from caredesk.channels.whatsapp_cloud.sender import WhatsAppCloudSender

    callbacks = CallbackUrls(services.db, services.settings.public_url)
    services.senders.update(
        {
            "email": EmailSender(storage=services.storage),
            "twilio_sms": TwilioSender(whatsapp=False, callbacks=callbacks),
            "twilio_whatsapp": TwilioSender(whatsapp=True, callbacks=callbacks),
            "whatsapp_cloud": WhatsAppCloudSender(services.db),
            "telegram": TelegramSender(),
            "messenger": MessengerSender(),
            "api": ApiSender(),
        }
    )
    services.registry.add("email.imap_poll", imap_poll_job)
    services.registry.add(MEDIA_JOB, media_job)
    redact_http_logs()
    install_webhooks(services)
