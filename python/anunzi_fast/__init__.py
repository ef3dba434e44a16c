"""anunzi-fast: a real-time Python client for Anunzi voice agents with a native audio core."""
