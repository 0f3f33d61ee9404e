"""Marshmallow schemas: request bodies, query args, responses and socket payloads."""
