"""signlab's dashboard: the router. ``streamlit run app.py``.

Lists every page with ``st.navigation`` (which turns off the automatic ``pages/`` discovery) and
draws what frames every page: sign-in (no page runs for a visitor who is not signed in), who is
signed in, and the sidebar's device line. Pages live in ``pages/`` and stay thin:
widgets, then calls into the ``signlab`` package.
"""
import streamlit as st

from signlab import ui

st.set_page_config(page_title="signlab", page_icon="✋", layout="wide")

PAGES = {
    "Learn": [
        st.Page("pages/home.py", title="Home", icon="🏠", default=True),
        st.Page("pages/guide.py", title="Guided tour", icon="🧭"),
    ],
    "Work": [
        st.Page("pages/data.py", title="Data", icon="🖼️"),
        st.Page("pages/train.py", title="Train", icon="🏋️"),
        st.Page("pages/evaluate.py", title="Evaluate", icon="🎯"),
        st.Page("pages/kernels.py", title="Kernels", icon="🔬"),
        st.Page("pages/map.py", title="Map", icon="🗺️"),
        st.Page("pages/classify.py", title="Classify", icon="✋"),
        st.Page("pages/calibrate.py", title="Teach it your hand", icon="🖐️"),
        st.Page("pages/runs.py", title="Runs", icon="🗂️"),
        st.Page("pages/sweeps.py", title="Sweeps", icon="🧪"),
    ],
}

nav = st.navigation(PAGES, position="sidebar" if ui.signed_in() else "hidden")
st.session_state[ui.Keys.ROUTED] = True
ui.require_user()  # a visitor who is not signed in sees the sign-in screen and no page
ui.account_box()
ui.device_badge()
ui.job_manager()  # starts the queue's background thread once per server process
nav.run()
