"""A locustfile for anunzi-fast's ``VoiceUser``: copy it, name your agent, run Locust as usual.

Each user is a caller making one real-time call after another (token request, session, the
WAV spoken in real time, silence, a hang-up once the agent has answered); Locust reports
``connect``, ``agent_ready``, ``first_audio``, ``turn`` and ``call`` as request types. The API
key is read from ``$ANUNZI_API_KEY`` on every machine, never from the command line.

One machine::

    locust -f locustfile_example.py --headless -u 50 -r 5 -t 60s --stop-timeout 60 \\
        --host https://widgets.anunzi.net --html report.html --csv run \\
        --summary-json summary.json --voice-progress

Many machines: the master, then workers (``pip install "anunzi-fast[load]"`` on each)::

    locust -f locustfile_example.py --master --headless -u 1000 -r 20 -t 5m --stop-timeout 60 \\
        --expect-workers 4 --host https://widgets.anunzi.net --summary-json summary.json
    locust -f locustfile_example.py --worker --master-host MASTER_ADDRESS

Options given to the master (``--assistant-id``, ``--input-wav``, ``--frame-ms``,
``--voice-driver``, ``--reply-timeout``, ``--hangup-after``) reach the workers; a WAV path must
exist on every worker. ``--stop-timeout`` lets calls under way at the end finish.
"""

from anunzi_fast.loadtest import VoiceUser


class SupportLineCaller(VoiceUser):
    """A caller of one agent; ``--assistant-id`` on the command line overrides it."""

    assistant_id = "echo"  # the emulator's agent; your agent's id here
    input_wav = None  # the bundled speech sample; a WAV path (any rate) for your own
    frame_ms = 20.0  # audio per message: a microphone block
