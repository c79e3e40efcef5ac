"""Configuration, database and security plumbing of the server."""
