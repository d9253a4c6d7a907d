"""relayflow: a self-hosted contact-automation orchestrator."""

__version__ = "0.1.0"
