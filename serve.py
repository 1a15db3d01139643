"""signlab's dashboard server: ``streamlit run serve.py`` (what ``scripts/app.sh`` starts).

The app itself is ``app.py`` (the router and its pages); this file wraps it in an ``st.App`` to add
one route of signlab's own: the live loss feed of ``signlab.live``, which the Train page's chart
reads while a run trains, so the browser does not re-render the whole page to move the chart
(issue 18: watching a run must not slow it down). ``streamlit run app.py`` still works, without
the feed: the page then polls fast enough to move the chart itself.

It also starts the server's job manager (``signlab.ui.job_manager``, the same one the pages use):
its background thread takes back expired leases and starts workers for queued runs. Started by the
first page instead, a server restarted at night left the runs queued before it waiting until a
student opened a page.
"""
import logging

import streamlit as st

from signlab import live

# Streamlit warns that no page runs yet ("No runtime found", "missing ScriptRunContext!") when its
# caches are made and used here, before the server has a session: true, and meant, so not printed
_BARE = [logging.getLogger(name) for name in ("streamlit.runtime.caching.cache_data_api",
                                              "streamlit.runtime.scriptrunner_utils.script_run_context")]
_LEVELS = [logger.level for logger in _BARE]
for logger in _BARE:
    logger.setLevel(logging.ERROR)
try:
    from signlab import ui
    from signlab.errors import SignlabError

    try:
        ui.job_manager()
    except (SignlabError, OSError):
        pass  # a runs folder or run database that cannot be used: every page says why, in one line
finally:
    for logger, level in zip(_BARE, _LEVELS):
        logger.setLevel(level)

app = st.App("app.py", routes=live.routes())
