"""Placeholder: replaced by the runs area."""

from fastapi import APIRouter

router = APIRouter()
