"""whatsapp-handler: a database-first WhatsApp service; this package is its thin Python shell."""

__version__ = "0.1.0"
