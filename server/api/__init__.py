"""The JSON API: one router per resource under ``server.api.routes``."""
