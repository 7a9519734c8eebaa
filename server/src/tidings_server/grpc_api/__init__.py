"""The gRPC adapter: the only code of the server that imports grpcio or the generated API."""
