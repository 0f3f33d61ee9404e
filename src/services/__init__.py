"""Logic with more than one caller, testable without a request."""
