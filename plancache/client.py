"""A small client for plancache's gRPC API, used by the command line and the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import grpc

from plancache.v1 import plan_service_pb2_grpc, stats_service_pb2_grpc, template_service_pb2_grpc

__all__ = ["Client", "connect"]

DEFAULT_SERVER = "127.0.0.1:50051"


@dataclass
class Client:
    """Stubs of the three services over one channel, with the caller's token."""

    channel: grpc.Channel
    plans: plan_service_pb2_grpc.PlanServiceStub
    templates: template_service_pb2_grpc.TemplateServiceStub
    stats: stats_service_pb2_grpc.StatsServiceStub
    metadata: tuple[tuple[str, str], ...]

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def connect(
    server: str | None = None,
    *,
    token: str | None = None,
    ca_file: str | None = None,
) -> Client:
    """A blocking client. ``server`` defaults to $PLANCACHE_SERVER or 127.0.0.1:50051."""
    address = server or os.environ.get("PLANCACHE_SERVER") or DEFAULT_SERVER
    token = token or os.environ.get("PLANCACHE_TOKEN")
    ca_file = ca_file or os.environ.get("PLANCACHE_CA_FILE")
    options = [("grpc.max_receive_message_length", 32 * 1024 * 1024)]
    if ca_file:
        with open(ca_file, "rb") as handle:
            credentials = grpc.ssl_channel_credentials(root_certificates=handle.read())
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return Client(
        channel=channel,
        plans=plan_service_pb2_grpc.PlanServiceStub(channel),
        templates=template_service_pb2_grpc.TemplateServiceStub(channel),
        stats=stats_service_pb2_grpc.StatsServiceStub(channel),
        metadata=metadata,
    )
