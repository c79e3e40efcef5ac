"""Server-rendered HTML pages (Jinja2, small vanilla JS, no build step)."""
