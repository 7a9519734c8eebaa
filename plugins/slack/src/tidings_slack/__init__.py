"""tidings-slack: payload formats that post a readable message to chat incoming webhooks."""
