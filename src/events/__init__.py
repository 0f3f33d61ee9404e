"""The Socket.IO side of the API: handlers for client events (like routes for REST)."""
