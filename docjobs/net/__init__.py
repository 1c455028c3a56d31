"""Requests to URLs a tenant chooses: the address rules, and fetching documents."""
