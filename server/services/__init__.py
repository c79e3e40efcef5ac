"""Domain logic: keyword-only functions over a SQLAlchemy session. Route handlers stay thin."""
