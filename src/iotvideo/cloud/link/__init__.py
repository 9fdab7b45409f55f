"""The link: WebSocket sessions of devices and apps, routed across cloud instances."""
