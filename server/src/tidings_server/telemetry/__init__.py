"""What operators see of a running server: metrics now, traces later; none of it changes behaviour."""
