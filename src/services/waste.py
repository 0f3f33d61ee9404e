"""Waste bins and collection routes."""
from src.db import get_db
from src.errors import ApiError
from src.models import bins


def list_bins(limit=50, offset=0, sort="bin_id", district=None, waste_type=None, min_fill=None):
    page = bins.list_page(get_db(), district=district, waste_type=waste_type, min_fill=min_fill, limit=limit,
                          offset=offset, sort=sort)
    return dict(page, limit=limit, offset=offset)


def create_bin(data):
    """Register a bin; a duplicate bin_id is a 409."""
    if bins.get(get_db(), data["bin_id"]):
        raise ApiError(f"Bin {data['bin_id']} already exists", status=409, error="conflict",
                       errors={"bin_id": ["already exists"]})
    return bins.create(get_db(), data)


def report_level(bin_id, data):
    """A level update for one bin, through the ingest pipeline; 404 for an unknown bin."""
    from src.services import ingest

    if bins.get(get_db(), bin_id) is None:
        raise ApiError(f"Bin {bin_id} not found", status=404)
    return ingest.ingest("waste", dict(data, bin_id=bin_id), source="api")
