"""The SIP side: lines (modes, auth, trusted IPs, rules, templates), knowing nothing of Telegram."""
