"""Typed keys of the admin application's state."""

from __future__ import annotations

import asyncio

from aiohttp import web

from ivr.dialplan_live import LivePlan
from ivr.prompt_library import PromptLibrary
from ivr.web.auth import TokenBook

PLANS = web.AppKey("plans", LivePlan)
PROMPTS = web.AppKey("prompts", PromptLibrary)
TOKENS = web.AppKey("tokens", TokenBook)
# Conversions run in threads; a few at a time keep the two cores for calls.
CONVERSION_SLOTS = web.AppKey("conversion_slots", asyncio.Semaphore)
CONVERSIONS = 2
