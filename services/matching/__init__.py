"""hubnet's matching service, declared once: its name and default port; everything else derives from them."""

from shared.service import Service

SERVICE = Service("matching", default_port=8002)
