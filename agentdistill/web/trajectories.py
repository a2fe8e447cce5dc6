"""Placeholder: replaced by the trajectories area."""

from fastapi import APIRouter

router = APIRouter()
