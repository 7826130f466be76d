"""Where SIP and Telegram meet: the Stasis application and the gateway process."""
