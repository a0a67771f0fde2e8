"""CTI bridge: the case store (`cases`, `catalogue`, `business_days`), Open311 GeoReport v2 (`open311`) and
API keys for machine clients (`apikeys`). Connectors, CTI events and the agent desktop come with issue 6's
later parts."""
