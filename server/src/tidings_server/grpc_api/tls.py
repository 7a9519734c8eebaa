"""TLS at the gRPC layer: server credentials that follow certificate reloads, and the identity
of a caller's verified client certificate.

gRPC asks the fetcher for a new certificate configuration at each new connection's handshake;
it answers with one only after ``Certificates.reload`` loaded new files (None means "unchanged",
which spares gRPC rebuilding its TLS context per connection). Connections already open keep
the session they negotiated, so open streams are never dropped by a reload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import grpc

from tidings_server.tls import Certificates, TlsMaterial


def _configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert_chain)], root_certificates=material.client_ca
    )


def server_credentials(certificates: Certificates) -> grpc.ServerCredentials:
    """Credentials serving ``certificates``' current material; with a client CA, a client
    without a certificate signed by it is refused at the handshake."""
    generation, material = certificates.current()
    lock = threading.Lock()
    served = [generation]  # what gRPC was last handed; fetches come from gRPC's threads

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        generation, material = certificates.current()
        with lock:
            if generation == served[0]:
                return None
            served[0] = generation
        return _configuration(material)

    return grpc.dynamic_ssl_server_credentials(
        _configuration(material),
        fetch,  # type: ignore[arg-type]  # None is "unchanged" (grpc's docs), which the stubs leave out
        require_client_authentication=certificates.mutual,
    )


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """Who a caller's client certificate names: what an access policy can map to a principal.

    Only a certificate that verified against the client CA gets here: without ``--client-ca``
    the server asks for none.
    """

    common_name: str | None
    alt_names: tuple[str, ...]  # DNS names, IP addresses, URIs and e-mail addresses, as gRPC lists them


def peer_certificate(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> PeerCertificate | None:  # type: ignore[type-arg]
    """The caller's verified certificate identity, or None for a caller without one (plaintext,
    or TLS without a client certificate)."""
    auth = context.auth_context()
    if not auth.get("x509_pem_cert"):
        return None

    def texts(key: str) -> tuple[str, ...]:
        return tuple(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in auth.get(key, ()))

    names = texts("x509_common_name")
    return PeerCertificate(names[0] if names else None, texts("x509_subject_alternative_name"))
