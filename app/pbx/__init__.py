"""The bundled Asterisk: provisioning, configuration, process supervision."""
