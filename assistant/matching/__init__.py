"""Pure matching stages: retrieval, criterion checks, ranking, follow-up questions."""
