"""Request and response bodies (pydantic); unknown fields are refused everywhere."""
