"""The simulated Telegram network: servers (`SimNetwork`), the client transport (`SimClient`), people (`SimPhone`)."""

from app.telegram.sim.network import Privacy, SimCall, SimNetwork, SimUser
from app.telegram.sim.phone import Behaviour, SimPhone, Tone
from app.telegram.sim.transport import SimClient

__all__ = ["Behaviour", "Privacy", "SimCall", "SimClient", "SimNetwork", "SimPhone", "SimUser", "Tone"]
