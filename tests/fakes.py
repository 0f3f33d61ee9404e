"""Stand-ins that record what the models would send to MongoDB (the embedded engine cannot show
how MongoDB reads a sort spec or picks an index)."""


class QueryRecorder:
    """A collection and its cursor: records each (collection, filter, sort spec) sent; yields `rows`."""

    def __init__(self, sent=None, name="collection", rows=()):
        self.sent = [] if sent is None else sent
        self.name, self.rows = name, list(rows)
        self.criteria = None

    @property
    def specs(self):
        """The sort specs sent, in order."""
        return [spec for _, _, spec in self.sent]

    def find(self, criteria=None, projection=None, **kwargs):
        self.criteria = criteria or {}
        return self

    def sort(self, spec, direction=None):
        if isinstance(spec, str):
            spec = [(spec, direction or 1)]
        self.sent.append((self.name, self.criteria, [(key, int(d)) for key, d in spec]))
        return self

    def skip(self, n):
        return self

    def limit(self, n):
        return self

    def __iter__(self):
        return iter(self.rows)

    def count_documents(self, criteria):
        return 0

    def find_one(self, *args, **kwargs):
        return None

    def update_one(self, *args, **kwargs):
        return None


class RecordingDb:
    """A database whose every collection is a QueryRecorder sharing one `sent` list."""

    def __init__(self):
        self.sent = []

    def __getattr__(self, name):
        return QueryRecorder(self.sent, name)
