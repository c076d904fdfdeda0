"""hubnet's intake service, declared once: its name and default port; everything else derives from them."""

from shared.service import Service

SERVICE = Service("intake", default_port=8001)
