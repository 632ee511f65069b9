"""Configuration section of the permit domain: company policy that GB 30871-2022 leaves open."""

from pydantic import BaseModel, Field


class PermitSettings(BaseModel):
    """Permit-domain settings."""

    timezone: str = Field(default="Asia/Shanghai", description="The site's time zone.")
