"""tidings-procore: Procore's webhook payload formats and resource catalog as a tidings plugin."""
