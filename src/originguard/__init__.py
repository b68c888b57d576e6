"""originguard: a self-hosted edge that protects origin servers."""
