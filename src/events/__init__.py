"""The Socket.IO side: handlers (client -> server), rooms (names), broadcast (the only emitter)."""
