"""Reference solutions of the homeworks: one model per file, and the solved notebooks."""
