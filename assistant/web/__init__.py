"""HTTP layer: blueprints, request schemas, JSON errors, the widget page."""
