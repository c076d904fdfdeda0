"""hubnet's reporting service, declared once: its name and default port; everything else derives from them."""

from shared.service import Service

SERVICE = Service("reporting", default_port=8004)
