"""The simulated Telegram network: servers (`SimNetwork`), the client transport (`SimClient`), people (`SimPhone`).

In another process: `python -m app.telegram.sim` serves a network (`SimServer`); `RemoteSimClient` connects to it.
"""

from app.telegram.sim.audio import CallAudio, Tone
from app.telegram.sim.network import Privacy, SimCall, SimNetwork, SimUser
from app.telegram.sim.phone import Behaviour, SimPhone
from app.telegram.sim.remote import RemoteSimClient, SimControl
from app.telegram.sim.server import SimServer
from app.telegram.sim.stats import PhoneStats
from app.telegram.sim.transport import SimClient

__all__ = ["Behaviour", "CallAudio", "PhoneStats", "Privacy", "RemoteSimClient", "SimCall", "SimClient", "SimControl",
           "SimNetwork", "SimPhone", "SimServer", "SimUser", "Tone"]
