"""signlab's dashboard: the router. ``streamlit run app.py``.

Lists every page with ``st.navigation`` and draws what frames every page: sign-in (no page runs
for a visitor who is not signed in), who is signed in, and the sidebar's device line. Pages live
in ``app_pages/`` and stay thin: widgets, then calls into the ``signlab`` package.

Why ``app_pages/`` and not ``pages/``: Streamlit treats a folder named ``pages/`` beside the main
script as its older automatic multipage app until the first ``st.navigation`` call of the server
process, so a user landing on ``/train`` of a fresh server got the page without this router (no
sign-in check, no wide layout). Avoiding that took flipping a private Streamlit attribute; with
another folder name there is nothing to switch off (Streamlit's own advice for ``st.navigation``).
"""
import streamlit as st

from signlab import ui

st.set_page_config(page_title="signlab", page_icon="✋", layout="wide")

PAGES = {
    "Learn": [
        st.Page("app_pages/home.py", title="Home", icon="🏠", default=True),
        st.Page("app_pages/guide.py", title="Guided tour", icon="🧭"),
    ],
    "Work": [
        st.Page("app_pages/data.py", title="Data", icon="🖼️"),
        st.Page("app_pages/train.py", title="Train", icon="🏋️"),
        st.Page("app_pages/evaluate.py", title="Evaluate", icon="🎯"),
        st.Page("app_pages/kernels.py", title="Kernels", icon="🔬"),
        st.Page("app_pages/map.py", title="Map", icon="🗺️"),
        st.Page("app_pages/classify.py", title="Classify", icon="✋"),
        st.Page("app_pages/calibrate.py", title="Teach it your hand", icon="🖐️"),
        st.Page("app_pages/runs.py", title="Runs", icon="🗂️"),
        st.Page("app_pages/sweeps.py", title="Sweeps", icon="🧪"),
    ],
}

nav = st.navigation(PAGES, position="sidebar" if ui.signed_in() else "hidden")
ui.require_user()  # a visitor who is not signed in sees the sign-in screen and no page
ui.account_box()
ui.device_badge()
ui.job_manager()  # starts the queue's background thread once per server process
nav.run()
