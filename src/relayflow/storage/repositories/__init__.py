"""Every query lives here, one module per aggregate, always scoped by workspace."""
