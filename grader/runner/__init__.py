"""Code that runs inside the sandbox: the notebook runner and the probe harness."""
