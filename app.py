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

from signlab import ui, views

st.set_page_config(page_title="signlab", page_icon="✋", layout="wide")
# Streamlit keeps 6rem above every page; its header takes 3.75rem (opaque where it shows the sidebar's
# toggle), and the rest was empty on every page, where the Train page's live chart needed the room at 1280x800
st.html("<style>[data-testid='stMainBlockContainer'] { padding-top: 3.75rem; }</style>")

def _page(name: str, icon: str, **kwargs) -> st.Page:
    """``app_pages/<name>.py`` under its title (``views.page_title``: the tour's buttons name it the same)."""
    return st.Page(f"app_pages/{name}.py", title=views.page_title(name), icon=icon, **kwargs)


PAGES = {
    "Learn": [
        _page("home", icon="🏠", default=True),
        _page("guide", icon="🧭"),
    ],
    "Work": [
        _page("data", icon="🖼️"),
        _page("train", icon="🏋️"),
        _page("evaluate", icon="🎯"),
        _page("kernels", icon="🔬"),
        _page("map", icon="🗺️"),
        _page("classify", icon="✋"),
        _page("calibrate", icon="🖐️"),
        _page("runs", icon="🗂️"),
        _page("sweeps", icon="🧪"),
    ],
}

nav = st.navigation(PAGES, position="sidebar" if ui.signed_in() else "hidden")
if problem := ui.server_problem():  # before any page, and before the queue's thread starts workers on it
    st.error(f"**signlab cannot run with this server's settings.** {problem}. The person who runs this "
             "server corrects it where it says (the server's environment or `.streamlit/secrets.toml`) and "
             "restarts the server; nothing has been changed.", icon="⚙️")
    st.stop()
ui.require_user()  # a visitor who is not signed in sees the sign-in screen and no page
ui.account_box()
ui.way_back_to_tour(nav)
ui.device_badge()
# where a page asked its next run to scroll (the tour's next step, Train's live run): before the page is
# drawn (the tour's step checks take seconds), in the sidebar (no gap in the page)
ui.scroll_if_asked(st.sidebar)
ui.job_manager()  # starts the queue's background thread once per server process
with ui.guard("this page stopped"):  # a SignlabError no page caught: its message, not a traceback
    nav.run()
