"""Outgoing real-time plumbing, below the services: room names, payload wiring, the one
broadcast module, per-process metrics and the replay seam guard. Services and jobs call it;
it imports nothing from services, routes or events."""
