"""Outbound channels. Each provider sends one rendered message and reports what happened."""
