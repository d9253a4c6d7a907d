"""The worker: claims due runs and advances them."""
