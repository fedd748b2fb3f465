"""ORM classes for chat sessions (widget dialogue state)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base


class ChatSession(Base):
    __tablename__ = "chat_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # unguessable token
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    asked: Mapped[list[str]] = mapped_column(JSON, default=list)  # question keys already asked
    pending_question: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
