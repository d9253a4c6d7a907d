from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import smtpserver


@pytest.fixture
def sink() -> Iterator[smtpserver.SmtpSink]:
    """A real SMTP server on 127.0.0.1."""
    server = smtpserver.start()
    yield server
    server.close()
