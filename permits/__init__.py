"""permits package."""
