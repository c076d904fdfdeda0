"""hubnet's notify service, declared once: its name and default port; everything else derives from them."""

from shared.service import Service

SERVICE = Service("notify", default_port=8003)
