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
import streamlit as st

from signlab import live, ui
from signlab.errors import SignlabError

try:
    ui.job_manager()
except (SignlabError, OSError):
    pass  # a runs folder or run database that cannot be used: every page says why, in one line

app = st.App("app.py", routes=live.routes())
