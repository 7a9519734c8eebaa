"""Delivery: the state machine, the retry policy, HTTP attempts and the delivery nursery."""
