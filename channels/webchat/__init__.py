"""Website live chat (issue #4): the citizen socket `/chat/ws`, the embeddable widget
`/widget.js` and the demo agency website. The protocol is in README.md.

Wire it with `setup(app, center, demo_site=…)`; the hub (`app[WEBCHAT_KEY]`) is also
the `ChannelAdapter` for `Channel.CHAT`.
"""

from channels.webchat.hub import WebChat, visitor_identity
from channels.webchat.protocol import Limits
from channels.webchat.web import WEBCHAT_KEY, setup
from routing import TypingChanged

__all__ = ["WEBCHAT_KEY", "Limits", "TypingChanged", "WebChat", "setup", "visitor_identity"]
