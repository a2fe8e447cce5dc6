"""Placeholder: replaced by the chat area."""

from fastapi import APIRouter

router = APIRouter()
