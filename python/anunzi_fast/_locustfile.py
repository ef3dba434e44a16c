"""The locustfile that ``anunzi-fast load`` runs: one caller, configured by its options."""

from anunzi_fast.loadtest import VoiceUser


class Caller(VoiceUser):
    """A caller configured entirely by the command line (``--assistant-id``, ...)."""
