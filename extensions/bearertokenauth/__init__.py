"""The `bearertokenauth` extension: API keys (stored hashed) that name a tenant and a kind."""
